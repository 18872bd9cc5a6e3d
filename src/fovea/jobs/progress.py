"""What every process job shares: claiming its process and inputs, state transitions and progress lines in the
DB, and the stop signal.

A process ends once: every move to a final state is one conditional UPDATE from `running` (or `pending`), so a
job never turns a process that was stopped, or failed meanwhile (its worker declared lost), into a finished one.
A job notices that its process left `running` the next time it writes a line or checks, and ends without touching
the state again.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from fovea.platform.db import Database
from fovea.platform.enums import UNFINISHED, ProcessState
from fovea.platform.models import Dataset, Process, ProgressLine, Weights
from fovea.platform.processes import settle


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
    if not settle(session, process_id, ProcessState.RUNNING, only_from=(ProcessState.PENDING,)):
        return None
    return session.get(Process, process_id, populate_existing=True)


def claim_inputs(session: Session, process_id: str, gone: str) -> tuple[Process, Weights, Dataset] | None:
    """`claim`, then the weights and the dataset the process runs on; RuntimeError(gone) when either was deleted.

    Every process job starts here, inside its first transaction.
    """
    process = claim(session, process_id)
    if process is None:
        return None
    weights = session.get(Weights, process.weights_id) if process.weights_id else None
    dataset = session.get(Dataset, process.dataset_id) if process.dataset_id else None
    if weights is None or dataset is None:
        raise RuntimeError(gone)
    return process, weights, dataset


def mark_failed(db_url: str, process_id: str, reason: str) -> None:
    """Fail a process from outside its job (its worker died); a process that already ended is left alone."""
    db = Database(db_url)
    try:
        _fail(db, process_id, reason)
    finally:
        db.dispose()


def _fail(db: Database, process_id: str, reason: str) -> None:
    with db.transaction() as session:
        settle(session, process_id, ProcessState.FAILED, f"Error - {reason}", only_from=UNFINISHED)


def write_line(db: Database, process_id: str, line: str) -> None:
    """Append a progress line; raises Stopped when the process is no longer running."""
    with db.transaction() as session:
        process = session.get(Process, process_id)
        if process is None or process.state != ProcessState.RUNNING:
            raise Stopped
        session.add(ProgressLine(process_id=process_id, line=line))
        process.updated = now()


@contextmanager
def writing_outputs(db: Database, process_id: str) -> Iterator[None]:
    """Write into the process's outputs folder only while it is running; raises Stopped (nothing written) once it
    was stopped or deleted (a deleted project: reference §3).

    The block runs inside a transaction that has just updated the process's row, so it holds that row's lock (the
    database's write lock on SQLite): a stop or a deletion, which update or delete the row before they remove the
    folder, waits for the write to end, and the job's next write finds the process gone.
    """
    with db.transaction() as session:
        running = update(Process).where(Process.id == process_id, Process.state == ProcessState.RUNNING)
        if session.execute(running.values(updated=now())).rowcount != 1:
            raise Stopped
        yield


def check_stop(db: Database, process_id: str) -> None:
    with db.transaction() as session:
        process = session.get(Process, process_id, populate_existing=True)
        if process is None or process.state != ProcessState.RUNNING:
            raise Stopped


def finish(db: Database, process_id: str, state: ProcessState, line: str | None = None) -> None:
    """End a running process in `state`; one that was stopped or failed meanwhile keeps its state."""
    with db.transaction() as session:
        settle(session, process_id, state, line)
