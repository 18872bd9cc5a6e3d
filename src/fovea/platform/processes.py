"""Inference processes: launch checks, single-image datasets, status, outputs and stop (backend-api.md §9)."""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from fovea.core.card import ModelCard
from fovea.core.io import Image, Volume, fetch_url, read_input, sniff
from fovea.core.predictions import Task
from fovea.core.settings import resolve_settings
from fovea.datasets import write_dataset_yaml
from fovea.platform.auth import now
from fovea.platform.catalog import get_task
from fovea.platform.datasets import get_dataset, spec_of
from fovea.platform.db import Database
from fovea.platform.enums import UNFINISHED, ProcessState, ProcessType
from fovea.platform.errors import InputError, NotFound
from fovea.platform.inference_settings import resolve_inference_settings
from fovea.platform.models import OWN, ArchModel, Dataset, DatasetMember, Process, ProgressLine, User, Weights
from fovea.platform.projects import get_project
from fovea.platform.storage import dataset_dir, process_outputs, weights_file
from fovea.platform.weights import get_weights

SETTINGS_KEY = "settings"  # the inference settings (thresholds, classes) beside the resolved hyperparameters
EXTENSIONS = {"png": "png", "jpeg": "jpg", "bmp": "bmp", "tiff": "tif", "dicom": "dcm", "nifti": "nii.gz"}


def _uuid(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InputError(f"{value!r} is not a process id (UUID)") from None


class JobQueue(Protocol):
    """Where launched processes run (jobs.executor.Executor): submitted after the commit, so the worker finds
    the row."""

    def submit_process(self, process_type: str, process_id: str, db_url: str, storage: Path) -> None: ...


@dataclass(frozen=True)
class InferenceOrder:
    """What `inference`, `inferenceSingle` and `explain` ask for (backend-api.md §9).

    The ids are integers (the body's schema, checked first); the other values are as sent: each is checked at its
    step of the documented order, with its own message.
    """

    project_id: int
    weights_id: int
    dataset_id: int | None = None  # `inference`: the dataset whose test split runs
    properties: object = None  # hyperparameter overrides (§10)
    settings: object = None  # inference settings (conf_thres, top_k, classes...), checked against the weights' card
    task_manager: object = None
    image_url: object = None  # `inferenceSingle` and `explain`: exactly one of these two
    image_data: object = None


def _inference_settings(weights: Weights, order: InferenceOrder) -> dict[str, Any]:
    """The optional `settings` (conf_thres, top_k, classes...), checked against the weights' card before any write."""
    overrides = order.settings
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise InputError('settings must be an object such as {"conf_thres": 0.5}')
    if weights.card is None:
        raise InputError(f"weights {weights.id} have no model card, so they take no inference settings")
    resolve_settings(ModelCard.from_json(weights.card), overrides)
    return overrides


def _common_checks(db: Session, user: User, order: InferenceOrder) -> tuple[Any, Weights, ArchModel]:
    if order.task_manager not in (None, "CELERY"):
        raise InputError(f"task_manager {order.task_manager!r} is not supported")
    project = get_project(db, user, order.project_id, need=OWN)
    weights = get_weights(db, user, order.weights_id)
    if not weights.is_active:
        raise InputError(f"Weights {weights.id} are not ready")
    model = db.get(ArchModel, weights.model_id)
    if model.task_id != project.task_id:
        project_task, model_task = get_task(db, project.task_id).name, get_task(db, model.task_id).name
        raise InputError(f"Project task {project_task} does not match model task {model_task}")
    return project, weights, model


def weights_to_explain(database: Database, user: User, order: InferenceOrder, storage: Path) -> Path:
    """The file of the weights `explain` runs, checked as `inferenceSingle` checks them before running weights for
    the caller: an owned project, visible and ready weights, and the same task."""
    with database.transaction() as db:
        _, weights, _ = _common_checks(db, db.merge(user), order)
        return weights_file(storage, weights.id)


def _new_process(db: Session, user: User, project_id: int, weights_id: int, dataset_id: int, **extra: Any) -> Process:
    stamp = now()
    process = Process(
        id=str(uuid.uuid4()),
        process_type=ProcessType.INFERENCE,
        project_id=project_id,
        user_id=user.id,
        weights_id=weights_id,
        dataset_id=dataset_id,
        state=ProcessState.PENDING,
        created=stamp,
        updated=stamp,
        **extra,
    )
    db.add(process)
    db.flush()
    return process


def launch_inference(database: Database, user: User, order: InferenceOrder, storage: Path, jobs: JobQueue) -> str:
    """`inference`: the process committed, then queued; its id."""
    with database.transaction() as db:
        process_id = create_inference(db, db.merge(user), order, storage).id
    jobs.submit_process(ProcessType.INFERENCE, process_id, database.url, storage)
    return process_id


def launch_single(
    database: Database, user: User, order: InferenceOrder, storage: Path, limits: Any, jobs: JobQueue
) -> str:
    """`inferenceSingle`: the image stored and the process committed, then queued; its id. The image's folder is
    removed when the transaction fails."""
    folder = None
    try:
        with database.transaction() as db:
            process, folder = create_single(db, db.merge(user), order, storage, limits)
            process_id = process.id
    except Exception:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    jobs.submit_process(ProcessType.INFERENCE, process_id, database.url, storage)
    return process_id


def create_inference(db: Session, user: User, order: InferenceOrder, storage: Path) -> Process:
    project, weights, model = _common_checks(db, user, order)
    if order.dataset_id is None:
        raise InputError("dataset_id is required and must be an integer")
    dataset = get_dataset(db, user, order.dataset_id)
    if dataset.task_id != model.task_id:
        raise InputError("Model and dataset must belong to the same task")
    spec = spec_of(dataset, storage)
    if not spec.ids("test"):
        raise InputError(f"dataset {dataset.id} has an empty test split")
    planes = max((len(s.location) for s in spec.samples if isinstance(s.location, list)), default=1)
    if planes > 1:  # a model card takes one image per input: reading one plane of each would pass silently
        raise InputError(
            f"dataset {dataset.id} has multi-plane samples ({planes} planes stacked as channels); models take one "
            "image per input"
        )
    settings: dict[str, Any] = resolve_inference_settings(db, model, weights, dataset.id, order.properties, storage)
    settings[SETTINGS_KEY] = _inference_settings(weights, order)
    return _new_process(db, user, project.id, weights.id, dataset.id, settings=json.dumps(settings))


def create_single(db: Session, user: User, order: InferenceOrder, storage: Path, limits: Any) -> tuple[Process, Path]:
    """Store the one image as a hidden single-image dataset; returns the process and that dataset's folder."""
    project, weights, model = _common_checks(db, user, order)
    forced = {"Batch size": "1", "Epochs": "1"}
    resolved = resolve_inference_settings(db, model, weights, None, order.properties, storage)
    settings = {**resolved, **forced}  # checked before any write
    settings[SETTINGS_KEY] = _inference_settings(weights, order)
    url = order.image_url
    data = single_image_bytes(order, limits)
    kind = sniff(data)
    if kind not in EXTENSIONS:
        raise InputError("the image is not a PNG, JPEG, BMP, TIFF, DICOM or NIfTI file")
    # Decoded within the limits before anything is written: a bomb or a truncated file is refused here,
    # not left behind as a dataset and a process that can only fail.
    _check_dimensions(weights, read_input(data, name="image_url" if url else "image_data", limits=limits))
    token = uuid.uuid4().hex
    extension = "nii" if kind == "nifti" and data[:2] != b"\x1f\x8b" else EXTENSIONS[kind]  # .nii.gz is gzipped
    name = f"UserImage{token}.{extension}"
    folder = dataset_dir(storage, token)
    folder.mkdir(parents=True)
    (folder / name).write_bytes(data)
    write_dataset_yaml(folder / "image.yml", name, [], [name], {"test": [0]})
    dataset = Dataset(
        name=name,
        path=str((folder / "image.yml").relative_to(storage)),
        task_id=project.task_id,
        single_image=True,
        members=[DatasetMember(user_id=user.id, permission=OWN)],
    )
    db.add(dataset)
    db.flush()
    process = _new_process(
        db, user, project.id, weights.id, dataset.id, settings=json.dumps(settings), image_name=str(url or name)
    )
    return process, folder


def single_image_bytes(order: InferenceOrder, limits: Any) -> bytes:
    """The one image of an `inferenceSingle` body: `image_url` fetched within the limits, or `image_data` decoded."""
    url, data_url = order.image_url, order.image_data
    if bool(url) == bool(data_url):
        raise InputError("send exactly one of `image_url` and `image_data`")
    if url:
        data, _ = fetch_url(str(url), limits=limits)
        return data
    return _from_data_url(str(data_url))


def _check_dimensions(weights: Weights, item: Image | Volume) -> None:
    """A 3-D model takes volumes; a 2-D model takes images, and volumes only when it segments them slice by slice."""
    if weights.card is None:
        return
    card = ModelCard.from_json(weights.card)
    if card.input.dims == 3 and not isinstance(item, Volume):
        raise InputError(f"weights {weights.id} are a 3-D model: send a volume (NIfTI, multi-frame DICOM), no image")
    if card.input.dims == 2 and isinstance(item, Volume) and card.task is not Task.SEGMENTATION:
        raise InputError(f"weights {weights.id} are a 2-D {card.task} model: send a 2-D image, not a volume")


def _from_data_url(value: str) -> bytes:
    header, sep, payload = value.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise InputError("image_data must be a data URL: data:<mime>;base64,<payload>")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("image_data is not valid base64") from None


def get_process(db: Session, user: User, process_id: Any) -> Process:
    process = db.get(Process, _uuid(process_id))
    if process is None:
        raise NotFound("Process not found")
    get_project(db, user, process.project_id)  # 404 unless its project is visible
    return process


def lines(db: Session, process: Process) -> list[str]:
    query = select(ProgressLine.line).where(ProgressLine.process_id == process.id).order_by(ProgressLine.id)
    return list(db.scalars(query))


def list_inferences(db: Session, user: User, project_id: int) -> list[Process]:
    get_project(db, user, project_id)
    query = select(Process).where(Process.project_id == project_id, Process.process_type == ProcessType.INFERENCE)
    return list(db.scalars(query.order_by(Process.created, Process.id)))


def stop(database: Database, user: User, process_id: Any, storage: Path) -> str:
    """`stopProcess`: the process stopped (NotFound when it had ended); what the answer says."""
    with database.transaction() as db:
        return _stop(db, db.merge(user), process_id, storage)


def _stop(db: Session, user: User, process_id: Any, storage: Path) -> str:
    process = get_process(db, user, process_id)
    get_project(db, user, process.project_id, need=OWN)
    if not settle(db, process.id, ProcessState.STOPPED, only_from=UNFINISHED):  # it ended meanwhile: its state stays
        raise NotFound("Process already stopped or non existing")
    shutil.rmtree(process_outputs(storage, process.id), ignore_errors=True)  # partial outputs are discarded
    return "Training stopped" if process.process_type == ProcessType.TRAINING else "Inference stopped"


def settle(
    db: Session,
    process_id: str,
    state: ProcessState,
    line: str | None = None,
    *,
    only_from: tuple[ProcessState, ...] = (ProcessState.RUNNING,),
    also: tuple[ColumnElement[bool], ...] = (),
) -> bool:
    """Move a process to `state` if it is still in one of `only_from`; True when this call moved it.

    One conditional UPDATE: when a job finishing, a sweep failing it and a stop race, the first wins and a final
    state never changes again. Only the winner adds its progress line.
    """
    moved = db.execute(
        update(Process)
        .where(Process.id == process_id, Process.state.in_(only_from), *also)
        .values(state=state, updated=now())
    )
    if moved.rowcount != 1:
        return False
    if line:
        db.add(ProgressLine(process_id=process_id, line=line))
    return True


def fail_stale(db: Session, stale_after_s: float) -> int:
    """Running processes (and weights downloads) whose worker stopped writing progress long ago (killed, machine
    lost): failed with a reason.

    Jobs write a line at least every few seconds while they work; Celery cannot tell the server a worker died.
    """
    from fovea.jobs.download import fail_stale_downloads  # the jobs package builds on this module

    cutoff = now() - timedelta(seconds=stale_after_s)
    silent = Process.updated < cutoff
    stale = db.scalars(select(Process.id).where(Process.state == ProcessState.RUNNING, silent)).all()
    reason = f"Error - no progress for {stale_after_s:.0f} s: the worker running it was lost"
    failed = sum(settle(db, process_id, ProcessState.FAILED, reason, also=(silent,)) for process_id in stale)
    return failed + fail_stale_downloads(db, stale_after_s)


def fail_orphans(db: Session, runner: str) -> int:
    """When a server starts: the processes its own worker pool (`runner`) left pending or running cannot finish.

    Others' processes (Celery workers, another replica's pool) are left alone: they may well be running.
    """
    query = select(Process.id).where(Process.runner == runner, Process.state.in_(UNFINISHED))
    reason = "Error - the server restarted before the process finished"
    orphans = db.scalars(query).all()
    return sum(settle(db, process_id, ProcessState.FAILED, reason, only_from=UNFINISHED) for process_id in orphans)
