"""What every process job shares: its state transitions and progress lines in the DB, and the stop signal.

A stop is a state written by `stopProcess`; a job notices it the next time it writes a line or checks, and ends
without touching the state again.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from fovea.platform.db import Database
from fovea.platform.models import Process, ProgressLine


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


class Stopped(Exception):
    """The process was stopped (or deleted) while its job ran."""


def run_job(body: Callable[[Database, str, Path], None], process_id: str, db_url: str, storage: str) -> None:
    """Run a job body in a worker process; every outcome ends in the process's state and progress lines."""
    db = Database(db_url)
    try:
        body(db, process_id, Path(storage))
    except Stopped:
        pass
    except Exception as exc:  # the reason goes to the progress log, the traceback to the worker's log
        traceback.print_exc()
        finish(db, process_id, "failed", f"Error - {type(exc).__name__}: {exc}")
    finally:
        db.dispose()


def claim(session: Session, process_id: str) -> Process | None:
    """The process, moved from pending to running; None when it is gone or no longer pending (stopped, or a
    redelivered message for a process that already ran)."""
    process = session.get(Process, process_id)
    if process is None or process.state != "pending":
        return None
    process.state, process.updated = "running", now()
    return process


def mark_failed(db_url: str, process_id: str, reason: str) -> None:
    """Fail a process from outside its job (its worker died); a process that already ended is left alone."""
    db = Database(db_url)
    try:
        with db.transaction() as session:
            process = session.get(Process, process_id)
            if process is not None and process.state in ("pending", "running"):
                session.add(ProgressLine(process_id=process_id, line=f"Error - {reason}"))
                process.state, process.updated = "failed", now()
    finally:
        db.dispose()


def write_line(db: Database, process_id: str, line: str) -> None:
    """Append a progress line; raises Stopped when the process was stopped meanwhile."""
    with db.transaction() as session:
        process = session.get(Process, process_id)
        if process is None or process.state == "stopped":
            raise Stopped
        session.add(ProgressLine(process_id=process_id, line=line))
        process.updated = now()


def check_stop(db: Database, process_id: str) -> None:
    with db.transaction() as session:
        state = session.get(Process, process_id, populate_existing=True)
        if state is None or state.state == "stopped":
            raise Stopped


def finish(db: Database, process_id: str, state: str, line: str | None = None) -> None:
    with db.transaction() as session:
        process = session.get(Process, process_id)
        if process is None or process.state == "stopped":
            return
        if line:
            session.add(ProgressLine(process_id=process_id, line=line))
        process.state, process.updated = state, now()
