"""The default executor: a pool of worker processes inside the server."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from fovea.jobs.download import run_download
from fovea.jobs.inference import run_inference
from fovea.jobs.progress import mark_failed
from fovea.jobs.training import run_training

JOBS = {"testing": run_inference, "training": run_training}


class LocalExecutor:
    """Runs process jobs FIFO in `workers` spawned processes (spawn: no forked ONNX Runtime or DB state).

    A worker that dies (killed, out of memory) fails its process with a reason and the pool is rebuilt,
    so later processes still run.
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self.closing = False
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"))

    def submit_process(self, process_type: str, process_id: str, db_url: str, storage: Path) -> None:
        """Queue a training or an inference (`process_type` "training" or "testing")."""
        job = JOBS[process_type]
        try:
            future = self.pool.submit(job, process_id, db_url, str(storage))
        except BrokenProcessPool:
            self.pool = self._new_pool()
            future = self.pool.submit(job, process_id, db_url, str(storage))

        def done(result: Future) -> None:
            if result.cancelled():  # queued when the server stopped: the next start fails it (fail_orphans)
                return
            error = result.exception()
            if isinstance(error, BrokenProcessPool) and self.closing:
                mark_failed(db_url, process_id, "the server stopped while it ran")
            elif isinstance(error, BrokenProcessPool):
                mark_failed(db_url, process_id, "the worker running it died")
                self.pool = self._new_pool()
            elif error is not None:
                mark_failed(db_url, process_id, f"{type(error).__name__}: {error}")

        future.add_done_callback(done)

    def submit_download(self, download_id: str, db_url: str, storage: Path, allow_hosts: list[str]) -> None:
        self.pool.submit(run_download, download_id, db_url, str(storage), allow_hosts)

    def shutdown(self, grace_s: float = 2.0) -> None:
        """Cancel queued jobs and end the workers, so none outlives the server; a running job is failed."""
        self.closing = True
        workers = list((self.pool._processes or {}).values())  # private: the pool gives no other handle
        self.pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace_s
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))  # an idle worker leaves on the pool's signal
            if worker.is_alive():
                worker.terminate()
