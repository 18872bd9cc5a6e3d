"""The Celery executor: the same job functions, run by `fovea worker` on any machine that shares the
database and the storage folder. Broker: FOVEA_BROKER_URL (Redis by default; RabbitMQ works too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery, signals

from fovea.jobs.download import run_download
from fovea.jobs.inference import run_inference
from fovea.jobs.progress import mark_failed
from fovea.jobs.training import run_training
from fovea.paths import keep_private
from fovea.platform.db import Database
from fovea.platform.enums import ProcessType

TASK_NAMES = {ProcessType.INFERENCE: "fovea.inference", ProcessType.TRAINING: "fovea.training"}


def make_app(broker_url: str) -> Celery:
    celery = Celery("fovea", broker=broker_url)
    # One job at a time per worker process, acknowledged only when done: a worker that dies mid-job
    # does not lose the message silently (the job sees the process is no longer pending and stops).
    celery.conf.update(
        task_acks_late=True, worker_prefetch_multiplier=1, task_serializer="json", accept_content=["json"]
    )
    return celery


app = make_app(os.environ.get("FOVEA_BROKER_URL", "redis://127.0.0.1:6379/0"))  # the worker's app


@signals.worker_init.connect
def _private_files(**_: Any) -> None:
    """Outputs and weights a worker writes into the shared storage are as private as the server's (0600/0700)."""
    keep_private()


@app.task(name=TASK_NAMES[ProcessType.INFERENCE])
def inference_task(process_id: str, db_url: str, storage: str) -> None:
    run_inference(process_id, db_url, storage)


@app.task(name=TASK_NAMES[ProcessType.TRAINING])
def training_task(process_id: str, db_url: str, storage: str) -> None:
    run_training(process_id, db_url, storage)


@app.task(name="fovea.download")
def download_task(download_id: str, db_url: str, storage: str, allow_hosts: list[str]) -> None:
    run_download(download_id, db_url, storage, allow_hosts)


class CeleryExecutor:
    """The server's side: sends jobs by task name through its own connection to the broker."""

    def __init__(self, broker_url: str | None = None) -> None:
        self.app = make_app(broker_url or app.conf.broker_url)

    def fail_orphans(self, db: Database) -> int:
        """Nothing to do at start-up: Celery workers outlive the server, and the stale sweep fails lost ones."""
        return 0

    def submit_process(self, process_type: str, process_id: str, db_url: str, storage: Path) -> None:
        try:
            self.app.send_task(TASK_NAMES[process_type], (process_id, db_url, str(storage)), task_id=process_id)
        except Exception as exc:  # broker unreachable: say so in the process, not with a 500 later
            mark_failed(db_url, process_id, f"the job queue is unreachable ({type(exc).__name__})")

    def submit_download(self, download_id: str, db_url: str, storage: Path, allow_hosts: list[str]) -> None:
        self.app.send_task("fovea.download", (download_id, db_url, str(storage), allow_hosts), task_id=download_id)

    def shutdown(self) -> None:
        self.app.close()
