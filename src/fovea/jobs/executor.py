"""What the server needs from whatever runs its jobs: the local process pool or Celery workers."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from fovea.platform.db import Database


class Executor(Protocol):
    """Runs trainings, inferences and weights downloads outside the server's process.

    A job finds everything it needs through the database URL and the storage root, so both executors run the same
    job functions; a submit that cannot reach its workers fails the job with the reason instead of raising.
    """

    def fail_orphans(self, db: Database) -> int:
        """At start-up: fail the jobs this executor left unfinished when the server last stopped; how many."""
        ...

    def submit_process(self, process_type: str, process_id: str, db_url: str, storage: Path) -> None:
        """Queue a training or an inference (a `ProcessType`)."""
        ...

    def submit_download(self, download_id: str, db_url: str, storage: Path, allow_hosts: list[str]) -> None:
        """Queue a weights download."""
        ...

    def shutdown(self) -> None:
        """Stop taking jobs, as the server stops."""
        ...
