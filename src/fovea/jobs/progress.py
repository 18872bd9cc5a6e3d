"""What every process job shares: its state transitions and progress lines in the DB, and the stop signal.

A process ends once: every move to a final state is one conditional UPDATE from `running` (or `pending`), so a
job never turns a process that was stopped, or failed meanwhile (its worker declared lost), into a finished one.
A job notices that its process left `running` the next time it writes a line or checks, and ends without touching
the state again.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from fovea.platform.db import Database
from fovea.platform.models import Process, ProgressLine
from fovea.platform.processes import UNFINISHED, settle


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


class Stopped(Exception):
    """The process left `running` (stopped, failed from outside, or deleted) while its job ran."""


def run_job(body: Callable[[Database, str, Path], None], process_id: str, db_url: str, storage: str) -> None:
    """Run a job body in a worker process; every outcome ends in the process's state and progress lines."""
    db = Database(db_url)
    try:
        body(db, process_id, Path(storage))
    except Stopped:
        pass
    except Exception as exc:  # the reason goes to the progress log, the traceback to the worker's log
        traceback.print_exc()
        _fail(db, process_id, f"{type(exc).__name__}: {exc}")
    finally:
        db.dispose()


def claim(session: Session, process_id: str) -> Process | None:
    """The process, moved from pending to running; None when it is gone or no longer pending (stopped, or a
    redelivered message for a process that already ran)."""
    if not settle(session, process_id, "running", only_from=("pending",)):
        return None
    return session.get(Process, process_id, populate_existing=True)


def mark_failed(db_url: str, process_id: str, reason: str) -> None:
    """Fail a process from outside its job (its worker died); a process that already ended is left alone."""
    db = Database(db_url)
    try:
        _fail(db, process_id, reason)
    finally:
        db.dispose()


def _fail(db: Database, process_id: str, reason: str) -> None:
    with db.transaction() as session:
        settle(session, process_id, "failed", f"Error - {reason}", only_from=UNFINISHED)


def write_line(db: Database, process_id: str, line: str) -> None:
    """Append a progress line; raises Stopped when the process is no longer running."""
    with db.transaction() as session:
        process = session.get(Process, process_id)
        if process is None or process.state != "running":
            raise Stopped
        session.add(ProgressLine(process_id=process_id, line=line))
        process.updated = now()


def check_stop(db: Database, process_id: str) -> None:
    with db.transaction() as session:
        process = session.get(Process, process_id, populate_existing=True)
        if process is None or process.state != "running":
            raise Stopped


def finish(db: Database, process_id: str, state: str, line: str | None = None) -> None:
    """End a running process in `state`; one that was stopped or failed meanwhile keeps its state."""
    with db.transaction() as session:
        settle(session, process_id, state, line)
