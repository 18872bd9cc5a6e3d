"""The download job: fetch weights registered by `onnx_url`, validate them, and activate or remove them.

The job writes the weights' file and activates their row only while that row is still the one it was registered
for (`weights.process_id` is the download's id); weights deleted meanwhile fail the download and nothing is written.

While it fetches and validates, the job stamps the download's `updated` column every HEARTBEAT_S, so a long fetch
is never taken by the stale sweep (FOVEA_STALE_AFTER_S) for a download whose worker was lost; a lost worker stops
stamping. Both steps have their own time limits, so the stamps cannot keep a stuck download alive for ever.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from fovea.core.card import ModelCard
from fovea.core.io import Limits, fetch_url
from fovea.errors import FoveaError
from fovea.paths import atomic_path
from fovea.platform.auth import now
from fovea.platform.db import Database
from fovea.platform.enums import UNFINISHED, ProcessState
from fovea.platform.models import Weights, WeightsDownload
from fovea.platform.onnx_check import validate_onnx
from fovea.platform.storage import weights_file

HEARTBEAT_S = 1.0  # how often a running download stamps `updated`: one small UPDATE a second at most


@dataclass(frozen=True, slots=True)
class _Job:
    url: str
    task_id: int
    classes: list[str] | None
    layer: str | None


def run_download(download_id: str, db_url: str, storage: str, allow_hosts: list[str]) -> None:
    db = Database(db_url)
    try:
        job = _claim(db, download_id)
        if job is None:
            return
        with _heartbeat(db, download_id):
            try:
                data, _ = fetch_url(job.url, limits=Limits(allow_private_hosts=tuple(allow_hosts)))
            except FoveaError as exc:
                _fail(db, download_id, f"download failed: {exc}")
                return
            try:
                card = validate_onnx(data, job.task_id, job.classes, job.layer)
            except FoveaError as exc:
                _fail(db, download_id, str(exc))
                return
        _activate(db, download_id, data, card, Path(storage))
    except Exception as exc:  # any other failure is reported, never left "running"
        _fail(db, download_id, f"{type(exc).__name__}: {exc}")
    finally:
        db.dispose()


def fail_download(db_url: str, download_id: str, reason: str) -> None:
    """Fail a download from outside its job (its worker died); one that already ended is left alone."""
    db = Database(db_url)
    try:
        _fail(db, download_id, reason)
    finally:
        db.dispose()


def fail_orphaned_downloads(session: Session, runner: str) -> int:
    """When a server starts: the downloads its own pool (`runner`) left pending or running cannot finish."""
    query = select(WeightsDownload.id).where(WeightsDownload.runner == runner, WeightsDownload.state.in_(UNFINISHED))
    reason = "the server restarted before the download finished"
    return sum(_fail_in(session, download_id, reason) for download_id in session.scalars(query).all())


def fail_stale_downloads(session: Session, stale_after_s: float) -> int:
    """Running downloads that have not moved for `stale_after_s` lost their worker (a Celery worker cannot say it
    died): failed. A download is one fetch and one validation, each with its own time limit, so it ends long before.
    """
    cutoff = now() - timedelta(seconds=stale_after_s)
    silent = or_(WeightsDownload.updated < cutoff, WeightsDownload.updated.is_(None))  # None: from before 0010
    query = select(WeightsDownload.id).where(WeightsDownload.state == ProcessState.RUNNING, silent)
    reason = f"no progress for {stale_after_s:.0f} s: the worker running it was lost"
    return sum(_fail_in(session, download_id, reason) for download_id in session.scalars(query).all())


@contextmanager
def _heartbeat(db: Database, download_id: str) -> Iterator[None]:
    """Stamp the running download's `updated` every HEARTBEAT_S while the block runs (in a thread of this worker,
    so the stamps end with it)."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_S):
            try:
                with db.transaction() as session:
                    stamp = update(WeightsDownload).where(
                        WeightsDownload.id == download_id, WeightsDownload.state == ProcessState.RUNNING
                    )
                    session.execute(stamp.values(updated=now()))
            except Exception:  # a busy database: the next beat tries again
                continue

    thread = threading.Thread(target=beat, name=f"download-heartbeat-{download_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _target(session: Session, download: WeightsDownload) -> Weights | None:
    """The weights this download fills; None once they were deleted."""
    weights = session.get(Weights, download.weights_id) if download.weights_id is not None else None
    return weights if weights is not None and weights.process_id == download.id else None


def _claim(db: Database, download_id: str) -> _Job | None:
    """Move a pending download to running; None (nothing to do) when it is gone, already ran, or lost its weights."""
    with db.transaction() as session:
        download = session.get(WeightsDownload, download_id)
        if download is None or download.state != ProcessState.PENDING:
            return None
        weights = _target(session, download)
        if weights is None:
            _fail_in(session, download_id, "the weights were deleted before the download started")
            return None
        # Not pending any more: a redelivered message, already taken.
        if not _move(session, download_id, (ProcessState.PENDING,), state=ProcessState.RUNNING):
            return None
        classes = weights.classes.split(",") if weights.classes else None
        return _Job(download.url, download.task_id, classes, weights.layer_to_remove)


def _activate(db: Database, download_id: str, data: bytes, card: ModelCard | None, storage: Path) -> None:
    """Write the file and activate the row in one transaction; weights deleted meanwhile fail the download."""
    written = None
    try:
        with db.transaction() as session:
            download = session.get(WeightsDownload, download_id)
            weights = _target(session, download) if download is not None else None
            if weights is None:
                _fail_in(session, download_id, "the weights were deleted while they downloaded")
                return
            # Not running any more: failed from outside meanwhile.
            if not _move(session, download_id, (ProcessState.RUNNING,), state=ProcessState.FINISHED):
                return
            written = weights_file(storage, weights.id)
            with atomic_path(written) as tmp:
                tmp.write_bytes(data)
            weights.is_active = True
            if card is not None:
                weights.card = card.to_json()
                weights.classes = weights.classes or ",".join(card.class_names) or None
    except Exception:
        if written is not None:
            written.unlink(missing_ok=True)  # the row was not activated: no file without it
        raise


def _move(session: Session, download_id: str, states: tuple[str, ...], **values: str) -> bool:
    """One conditional UPDATE, so a download ends once however many parties try (job, dead-worker callback)."""
    moved = session.execute(
        update(WeightsDownload)
        .where(WeightsDownload.id == download_id, WeightsDownload.state.in_(states))
        .values(**values, updated=now())
    )
    return moved.rowcount == 1


def _fail(db: Database, download_id: str, reason: str) -> None:
    with db.transaction() as session:
        _fail_in(session, download_id, reason)


def _fail_in(session: Session, download_id: str, reason: str) -> bool:
    """The download failed, once (False when it had already ended): its inactive weights go, the reason stays for
    weightsStatus."""
    if not _move(session, download_id, UNFINISHED, state=ProcessState.FAILED, error=reason):
        return False
    weights = _target(session, session.get(WeightsDownload, download_id))
    if weights is not None and not weights.is_active:
        session.delete(weights)
    return True
