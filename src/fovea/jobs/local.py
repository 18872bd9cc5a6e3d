"""The default executor: a pool of worker processes inside the server."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from fovea.jobs.inference import run_inference


class LocalExecutor:
    """Runs process jobs FIFO in `workers` spawned processes (spawn: no forked ONNX Runtime or DB state)."""

    def __init__(self, workers: int = 1) -> None:
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit_inference(self, process_id: str, db_url: str, storage: Path) -> None:
        self.pool.submit(run_inference, process_id, db_url, str(storage))

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
