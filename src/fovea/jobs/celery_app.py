"""The Celery executor: the same job functions, run by `fovea worker` on any machine that shares the
database and the storage folder. Broker: FOVEA_BROKER_URL (Redis by default; RabbitMQ works too).
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

from fovea.jobs.download import run_download
from fovea.jobs.inference import mark_failed, run_inference

app = Celery("fovea", broker=os.environ.get("FOVEA_BROKER_URL", "redis://127.0.0.1:6379/0"))
# One job at a time per worker process, acknowledged only when done: a worker that dies mid-job
# does not lose the message silently (the job sees the process is no longer pending and stops).
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, task_serializer="json", accept_content=["json"])


@app.task(name="fovea.inference")
def inference_task(process_id: str, db_url: str, storage: str) -> None:
    run_inference(process_id, db_url, storage)


@app.task(name="fovea.download")
def download_task(download_id: str, db_url: str, storage: str, allow_hosts: list[str]) -> None:
    run_download(download_id, db_url, storage, allow_hosts)


class CeleryExecutor:
    def __init__(self, broker_url: str | None = None) -> None:
        if broker_url:
            app.conf.broker_url = broker_url

    def submit_inference(self, process_id: str, db_url: str, storage: Path) -> None:
        try:
            inference_task.apply_async((process_id, db_url, str(storage)), task_id=process_id)
        except Exception as exc:  # broker unreachable: say so in the process, not with a 500 later
            mark_failed(db_url, process_id, f"the job queue is unreachable ({type(exc).__name__})")

    def submit_download(self, download_id: str, db_url: str, storage: Path, allow_hosts: list[str]) -> None:
        download_task.apply_async((download_id, db_url, str(storage), allow_hosts), task_id=download_id)

    def shutdown(self) -> None:
        pass
