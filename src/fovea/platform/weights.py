"""Weights: registered ONNX files with their cards, visibility, sharing and storage (backend-api.md §6)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fovea.core.card import ModelCard
from fovea.paths import atomic_path
from fovea.platform.datasets import get_dataset
from fovea.platform.db import Database
from fovea.platform.enums import ProcessState
from fovea.platform.errors import Conflict, Forbidden, InputError, NotFound
from fovea.platform.models import OWN, ArchModel, Dataset, Process, User, Weights, WeightsDownload, WeightsMember
from fovea.platform.onnx_check import validate_onnx
from fovea.platform.sharing import check_not_in_use, parse_members
from fovea.platform.storage import weights_file


@dataclass(frozen=True)
class NewWeights:
    """`POST weights` (backend-api.md §6): the fields besides the ONNX bytes, as sent (None when absent), each checked
    here with its own message. Without bytes, `onnx_url` names where a worker downloads them from."""

    name: object = None
    model_id: object = None
    dataset_id: object = None
    public: object = False
    users: object = None
    layer_to_remove: object = None
    classes: object = None
    onnx_url: object = None


@dataclass(frozen=True)
class WeightsChanges:
    """`PUT`/`PATCH weights/{id}` (backend-api.md §6): the fields as sent, each checked here with its own message.
    `sent` names the fields the body held: only those change (PUT needs `name` and `public` among them)."""

    name: object = None
    public: object = None
    users: object = None
    dataset_id: object = None
    layer_to_remove: object = None
    classes: object = None
    model_id: object = None  # read-only, like pretrained_on: when sent, it must equal the stored value
    pretrained_on: object = None
    sent: frozenset[str] = frozenset()


def default_settings(card: str) -> dict[str, Any]:
    """The default inference settings of a model card (JSON), as weights listings show them."""
    return dict(_card_settings(card))


@lru_cache(maxsize=256)
def _card_settings(card: str) -> dict[str, Any]:
    # Parsing a card takes ~3 ms for 1000 classes; every listing shows each weights' settings.
    return ModelCard.from_json(card).default_settings


def _level(w: Weights, user: User) -> str | None:
    return next((m.permission for m in w.members if m.user_id == user.id), None)


def get_weights(db: Session, user: User, weights_id: int, *, need: str | None = None) -> Weights:
    """Visible weights (public, or a row; inactive ones only with a row); `need=OWN` is a 403 otherwise."""
    w = db.get(Weights, weights_id)
    level = _level(w, user) if w else None
    if w is None or (level is None and not (w.public and w.is_active)):
        raise NotFound(f"weights {weights_id} not found")
    if need == OWN and level != OWN:
        raise Forbidden("this action needs OWN permission on the weights")
    return w


def list_weights(db: Session, user: User, model_id: int, include_inactive: bool = False) -> list[Weights]:
    member = select(WeightsMember.weights_id).where(WeightsMember.user_id == user.id)
    visible = or_(Weights.public, Weights.id.in_(member))
    active = or_(Weights.is_active, Weights.id.in_(member)) if include_inactive else Weights.is_active
    query = select(Weights).where(Weights.model_id == model_id, visible, active).order_by(Weights.id)
    return list(db.scalars(query))


def class_list(value: Any) -> list[str] | None:
    """Class names from a comma-separated string (as stored) or a list; None when there are none."""
    if value is None or value == "":
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    raise InputError("classes must be comma-separated class names")


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise InputError(f"{name} must be true or false")


def _dataset(db: Session, user: User, dataset_id: Any, task_id: int) -> Dataset | None:
    """The visible dataset weights were trained on (404 otherwise), which must share the model's task (400)."""
    if dataset_id is None:
        return None
    if not isinstance(dataset_id, int) or isinstance(dataset_id, bool):
        raise InputError("dataset_id must be an integer")
    dataset = get_dataset(db, user, dataset_id)
    if dataset.task_id != task_id:
        raise InputError(f"dataset {dataset_id} is for another task than the model")
    return dataset


def create_weights(database: Database, user: User, fields: NewWeights, data: bytes | None, storage: Path) -> Weights:
    """Register weights in a transaction of their own; the file written inside it goes again if the commit fails."""
    created = None
    try:
        with database.transaction() as db:
            created = _create_weights(db, db.merge(user), fields, data, storage)
    except Exception:
        if created is not None and created.id is not None:
            weights_file(storage, created.id).unlink(missing_ok=True)
        raise
    return created


def _create_weights(db: Session, user: User, fields: NewWeights, data: bytes | None, storage: Path) -> Weights:
    """Validate everything, then write the row and the file together (the file only if the row commits).

    Without `data`, the weights come from `fields.onnx_url`: they stay inactive, with a download record
    whose id is the `process_id` a worker fetches, validates and activates them under.
    """
    name, model_id = fields.name, fields.model_id
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise InputError("name must be 1-200 characters", {"fields": {"name": ["This field is required."]}})
    model = db.get(ArchModel, model_id) if isinstance(model_id, int) and not isinstance(model_id, bool) else None
    if model is None:
        raise InputError(f"model {model_id!r} does not exist", {"fields": {"model_id": ["Unknown model."]}})
    dataset = _dataset(db, user, fields.dataset_id, model.task_id)
    classes = class_list(fields.classes)
    layer = fields.layer_to_remove or None
    card = validate_onnx(data, model.task_id, classes, layer) if data is not None else None
    if classes is None and card is not None and card.classes:
        classes = list(card.class_names)
    if classes is None and dataset is not None and dataset.classes:
        classes = dataset.classes.split(",")
    members = parse_members(db, fields.users, user)
    w = Weights(
        name=name,
        model_id=model.id,
        dataset_id=dataset.id if dataset else None,
        public=_bool(fields.public, "public"),
        layer_to_remove=layer,
        classes=",".join(classes) if classes else None,
        card=card.to_json() if card else None,
        members=[WeightsMember(user_id=uid, permission=perm) for uid, perm in members],
    )
    db.add(w)
    db.flush()
    if data is None:
        url = fields.onnx_url
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InputError("onnx_url must be an http or https URL")
        download = WeightsDownload(
            id=str(uuid.uuid4()), weights_id=w.id, user_id=user.id, url=url, task_id=model.task_id
        )
        db.add(download)
        w.is_active, w.process_id = False, download.id
        db.flush()
        return w
    with atomic_path(weights_file(storage, w.id)) as tmp:
        tmp.write_bytes(data)
    return w


def update_weights(
    db: Session, user: User, weights_id: int, changes: WeightsChanges, *, partial: bool, storage: Path
) -> Weights:
    w = get_weights(db, user, weights_id, need=OWN)
    sent = changes.sent
    for key in ("model_id", "pretrained_on"):
        if key in sent and getattr(changes, key) != getattr(w, key):
            raise InputError(f"{key} is read-only")
    if not partial:
        missing = [k for k in ("name", "public") if k not in sent]
        if missing:
            raise InputError(f"missing fields: {', '.join(missing)}")
    if "dataset_id" in sent:
        dataset = _dataset(db, user, changes.dataset_id, db.get(ArchModel, w.model_id).task_id)
        w.dataset_id = dataset.id if dataset else None
    name = changes.name if "name" in sent else w.name
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise InputError("name must be 1-200 characters")
    classes = class_list(changes.classes if "classes" in sent else w.classes)
    layer = (changes.layer_to_remove if "layer_to_remove" in sent else w.layer_to_remove) or None
    if "classes" in sent or "layer_to_remove" in sent:
        model = db.get(ArchModel, w.model_id)
        validate_onnx(weights_file(storage, w.id).read_bytes(), model.task_id, classes, layer)
    members = parse_members(db, changes.users, None) if "users" in sent else None
    w.name, w.layer_to_remove = name, layer
    w.classes = ",".join(classes) if classes else None
    if "public" in sent:
        w.public = _bool(changes.public, "public")
    if members is not None:
        w.members.clear()
        db.flush()
        w.members.extend(WeightsMember(user_id=uid, permission=perm) for uid, perm in members)
    db.flush()
    return w


def delete_weights(database: Database, user: User, weights_id: int, storage: Path) -> None:
    """Delete the row, then its file once the row is gone for good."""
    with database.transaction() as db:
        w = get_weights(db, db.merge(user), weights_id, need=OWN)
        check_not_in_use(db, Process.weights_id, w.id, "weights")
        _check_not_being_written(db, w)
        db.delete(w)
    weights_file(storage, weights_id).unlink(missing_ok=True)


def _check_not_being_written(db: Session, w: Weights) -> None:
    """409 while the download or the training that fills these weights runs: it writes their file and activates
    their row, so deleting them under it would leave a file with no row (a pending job finds the row gone instead)."""
    if w.process_id is None:
        return
    download = db.get(WeightsDownload, w.process_id)
    if download is not None and download.state == ProcessState.RUNNING:
        raise Conflict(f"weights {w.id} are being downloaded by process {w.process_id}; wait for it to end")
    training = db.get(Process, w.process_id)
    if training is not None and training.state == ProcessState.RUNNING:
        raise Conflict(f"weights {w.id} are written by training process {w.process_id}; stop it or wait for it to end")


def download(db: Session, user: User, weights_id: int, storage: Path) -> tuple[Path, str]:
    w = get_weights(db, user, weights_id)
    if not w.is_active:
        raise NotFound(f"weights {weights_id} not found")
    return weights_file(storage, w.id), f"{w.name}.onnx"


def download_status(db: Session, user: User, process_id: Any) -> dict[str, Any]:
    """`weightsStatus`: the uploader's view of a URL registration."""
    try:
        key = str(uuid.UUID(str(process_id)))
    except ValueError:
        raise InputError(f"{process_id!r} is not a process id (UUID)") from None
    download = db.get(WeightsDownload, key)
    if download is None or download.user_id != user.id:
        raise NotFound("Process stopped before finishing or non existing.")
    status = {"process_type": "Model Weight downloading", "result": download.state}
    if download.error:
        status["error"] = download.error
    return status
