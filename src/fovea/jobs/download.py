"""The download job: fetch weights registered by `onnx_url`, validate them, and activate or remove them."""

from __future__ import annotations

from pathlib import Path

from fovea.core.io import Limits, fetch_url
from fovea.errors import FoveaError
from fovea.paths import atomic_path
from fovea.platform.db import Database
from fovea.platform.models import Weights, WeightsDownload
from fovea.platform.onnx_check import validate_onnx


def run_download(download_id: str, db_url: str, storage: str, allow_hosts: list[str]) -> None:
    db = Database(db_url)
    try:
        with db.transaction() as session:
            download = session.get(WeightsDownload, download_id)
            if download is None or download.state != "pending" or download.weights_id is None:
                return
            download.state = "running"
            weights = session.get(Weights, download.weights_id)
            url, task_id, weights_id = download.url, download.task_id, weights.id
            classes = weights.classes.split(",") if weights.classes else None
            layer = weights.layer_to_remove
        try:
            data, _ = fetch_url(url, limits=Limits(allow_private_hosts=tuple(allow_hosts)))
        except FoveaError as exc:
            _fail(db, download_id, f"download failed: {exc}")
            return
        try:
            card = validate_onnx(data, task_id, classes, layer)
        except FoveaError as exc:
            _fail(db, download_id, str(exc))
            return
        with atomic_path(Path(storage) / "weights" / f"{weights_id}.onnx") as tmp:
            tmp.write_bytes(data)
        with db.transaction() as session:
            weights = session.get(Weights, weights_id)
            if weights is None:  # deleted meanwhile: nothing to activate
                (Path(storage) / "weights" / f"{weights_id}.onnx").unlink(missing_ok=True)
                return
            weights.is_active = True
            if card is not None:
                weights.card = card.to_json()
                weights.classes = weights.classes or ",".join(card.class_names) or None
            session.get(WeightsDownload, download_id).state = "finished"
    except Exception as exc:  # any other failure is reported, never left "running"
        _fail(db, download_id, f"{type(exc).__name__}: {exc}")
    finally:
        db.dispose()


def _fail(db: Database, download_id: str, reason: str) -> None:
    """The download failed: the inactive weights go, the reason stays for weightsStatus."""
    with db.transaction() as session:
        download = session.get(WeightsDownload, download_id)
        if download is None:
            return
        if download.weights_id is not None:
            weights = session.get(Weights, download.weights_id)
            if weights is not None:
                session.delete(weights)
        download.state, download.error = "failed", reason
