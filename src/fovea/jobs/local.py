"""The default executor: a pool of worker processes inside the server."""

from __future__ import annotations

import multiprocessing
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from sqlalchemy import update

from fovea.jobs.download import fail_download, fail_orphaned_downloads, run_download
from fovea.jobs.inference import run_inference
from fovea.jobs.progress import mark_failed
from fovea.jobs.training import run_training
from fovea.platform import processes
from fovea.platform.db import Database
from fovea.platform.enums import ProcessState, ProcessType
from fovea.platform.models import Process, WeightsDownload

JOBS = {ProcessType.INFERENCE: run_inference, ProcessType.TRAINING: run_training}
SHUTDOWN_GRACE_S = 2.0  # how long stopping waits for idle workers to leave before it ends them


class LocalExecutor:
    """Runs process jobs FIFO in `workers` spawned processes (spawn: no forked ONNX Runtime or DB state).

    A worker that dies (killed, out of memory) fails its process or download with a reason and the pool is
    rebuilt, so later jobs still run. Each process or download it takes is marked as run by `runner` (this host's
    pool), so the next start on this host fails what it left behind and nothing else (one local-executor server per
    host and database).
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self.closing = False
        self.runner = f"local@{socket.gethostname()}"
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))

    def fail_orphans(self, db: Database) -> int:
        """At start-up: what this host's pool left pending or running when the server last stopped cannot finish."""
        with db.transaction() as session:
            return processes.fail_orphans(session, self.runner) + fail_orphaned_downloads(session, self.runner)

    def submit_process(self, process_type: str, process_id: str, db_url: str, storage: Path) -> None:
        """Queue a training or an inference (a `ProcessType`)."""
        self._own(db_url, Process, process_id)
        future = self._submit(JOBS[process_type], process_id, db_url, str(storage))
        future.add_done_callback(lambda result: self._settle(result, lambda why: mark_failed(db_url, process_id, why)))

    def submit_download(self, download_id: str, db_url: str, storage: Path, allow_hosts: list[str]) -> None:
        self._own(db_url, WeightsDownload, download_id)
        future = self._submit(run_download, download_id, db_url, str(storage), allow_hosts)
        future.add_done_callback(
            lambda result: self._settle(result, lambda why: fail_download(db_url, download_id, why))
        )

    def _own(self, db_url: str, table: type[Process] | type[WeightsDownload], job_id: str) -> None:
        database = Database(db_url)
        try:
            with database.transaction() as session:
                pending = update(table).where(table.id == job_id, table.state == ProcessState.PENDING)
                session.execute(pending.values(runner=self.runner))
        finally:
            database.dispose()

    def _submit(self, job: Callable[..., None], *args: Any) -> Future:
        try:
            return self.pool.submit(job, *args)
        except BrokenProcessPool:
            self.pool = self._new_pool()
            return self.pool.submit(job, *args)

    def _settle(self, result: Future, fail: Callable[[str], None]) -> None:
        """A job's future ended: a job that could not report its own end is failed here with the reason."""
        if result.cancelled():  # queued when the server stopped: the next start fails it (fail_orphans)
            return
        error = result.exception()
        if isinstance(error, BrokenProcessPool) and self.closing:
            fail("the server stopped while it ran")
        elif isinstance(error, BrokenProcessPool):  # the next submit builds a new pool
            fail("the worker running it died")
        elif error is not None:
            fail(f"{type(error).__name__}: {error}")

    def shutdown(self) -> None:
        """Cancel queued jobs and end the workers, so none outlives the server; a running job is failed."""
        self.closing = True
        workers = list((self.pool._processes or {}).values())  # private: the pool gives no other handle
        self.pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))  # an idle worker leaves on the pool's signal
            if worker.is_alive():
                worker.terminate()
