"""Training processes: launch checks, fine-tuning rules, the training records (backend-api.md §9-§11)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from sqlalchemy import select
from sqlalchemy.orm import Session

from fovea.datasets.deephealth import CTYPE_CHANNELS, served_color
from fovea.platform.auth import now
from fovea.platform.catalog import get_task
from fovea.platform.datasets import get_dataset, spec_of
from fovea.platform.db import Database
from fovea.platform.enums import TRAINABLE_TASKS, ProcessState, ProcessType, TaskId
from fovea.platform.errors import InputError, NotFound
from fovea.platform.hyperparams import parse_user_properties, resolve
from fovea.platform.models import (
    OWN,
    ArchModel,
    Dataset,
    Process,
    Property,
    Training,
    TrainingSetting,
    User,
    Weights,
    WeightsMember,
)
from fovea.platform.processes import JobQueue
from fovea.platform.projects import get_project
from fovea.platform.storage import weights_file
from fovea.platform.weights import class_list, get_weights

INHERIT, NEW_HEAD = "inherit", "new head"
FINAL_LAYER = "final_layer"


def _names(value: str | None) -> list[str]:
    return class_list(value) or []


def fine_tuning(db: Session, parent: Weights, dataset: Dataset) -> str:
    """§11's first matching rule: inherit the network, or cut it at `layer_to_remove` for a new head (else 400)."""
    if parent.dataset_id == dataset.id:
        return INHERIT
    if parent.dataset_id is not None:
        trained_on = db.get(Dataset, parent.dataset_id)
        if trained_on is not None and _names(trained_on.classes) == _names(dataset.classes):
            return INHERIT
    elif parent.classes and dataset.classes and _names(parent.classes) == _names(dataset.classes):
        return INHERIT
    if parent.layer_to_remove and dataset.task_id != TaskId.DETECTION:  # detection weights are never cut
        return NEW_HEAD
    raise InputError(f"The Model weight with id `{parent.id}` cannot be used with dataset {dataset.id}.")


def usable_on(db: Session, weights: list[Weights], dataset: Dataset) -> list[Weights]:
    """The weights for which the fine-tuning rules do not end in a refusal (`weights?dataset_id=`)."""
    kept = []
    for w in weights:
        try:
            fine_tuning(db, w, dataset)
        except InputError:
            continue
        kept.append(w)
    return kept


def _graph_dims(path: Path) -> tuple[list[int | None], list[int | None]]:
    """Static dimensions (None when symbolic) of the first graph input and the first output."""
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    first = next(i for i in graph.input if i.name not in initializers)

    def dims(value: Any) -> list[int | None]:
        return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]

    return dims(first), dims(graph.output[0])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def check_channels(dataset: Dataset, weights: Weights, input_dims: list[int | None], planes: int = 1) -> None:
    """400 unless training can read the dataset into the channels the weights' NCHW input takes, as served inputs.

    Training converts every image to the dataset's colour type (training/data.py); only GRAY, RGB and BGR inputs
    can be served (a model card's colours), and a multi-plane sample (`planes` files) cannot come in one request.
    A dataset without a colour type, or weights whose input is not a 4-D tensor with a static channel axis, are
    not checked for channels; NONE (the files' own channels) is checked when the training reads the files.
    """
    if not dataset.ctype:
        return
    if dataset.ctype != "NONE" or planes > 1:
        try:
            served_color(dataset.ctype, planes)
        except InputError as exc:
            raise InputError(f"dataset '{dataset.name}': {exc}") from None
    if dataset.ctype == "NONE" or len(input_dims) != 4 or not input_dims[1]:
        return
    given, expected = CTYPE_CHANNELS[dataset.ctype], input_dims[1]
    if given == expected:
        return
    raise InputError(
        f"dataset '{dataset.name}' is {dataset.ctype} ({_plural(given, 'channel')}) but weights '{weights.name}' "
        f"expect {_plural(expected, 'input channel')}"
    )


def runs_at(path: Path, size: tuple[int, int], output_dims: list[int | None]) -> str | None:
    """Why the 2-D network in `path` cannot take (height, width) `size` inputs, or None when it can.

    The graph's static input size is replaced by `size` and ONNX shape inference (strict, with constant
    propagation) runs through it: a fully convolutional backbone (convolutions down to a global pooling, or a
    segmentation network) passes, a dense layer sized for the original feature map fails on its dimensions. No
    tensor is computed, so asking for a huge size costs nothing here. A 2-D output (classes, features) must keep
    its width. Training then converts the graph to PyTorch and exports it at `size` (training/pipeline.py).
    """
    model = onnx.load(str(path))
    initializers = {init.name for init in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in initializers)
    first.type.tensor_type.shape.dim[2].dim_value, first.type.tensor_type.shape.dim[3].dim_value = size
    del model.graph.value_info[:]  # intermediate shapes recorded at the original size
    for output in model.graph.output:
        output.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError, and others for unsupported graphs
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return (lines[0] if lines else type(exc).__name__)[:300]
    shape = inferred.graph.output[0].type.tensor_type.shape
    dims = [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]
    if len(output_dims) == 2 and len(dims) == 2 and output_dims[1] and dims[1] != output_dims[1]:
        return f"its output would have {dims[1]} values instead of {output_dims[1]}"
    return None


def check_input_size(
    path: Path, static: tuple[int, int], output_dims: list[int | None], resolved: dict[str, str]
) -> None:
    """400 unless the weights, exported at `static` (height, width), run at the asked Input height x width."""
    if "Input height" not in resolved or "Input width" not in resolved:
        return
    asked = (int(resolved["Input height"]), int(resolved["Input width"]))
    if asked == static:
        return
    why = runs_at(path, asked, output_dims)
    if why is not None:
        raise InputError(
            f"the weights take {static[0]}x{static[1]} inputs: set Input height to {static[0]} and Input width to "
            f"{static[1]} (the network does not run at {asked[0]}x{asked[1]}: {why})"
        )


@dataclass(frozen=True)
class TrainingOrder:
    """What `POST train` asks for (backend-api.md §9): fine-tune `weights_id` on `dataset_id` in `project_id`.

    The ids are integers (the body's schema, checked first); the other values are as sent, each checked at its step
    of the documented order, with its own message.
    """

    project_id: int
    dataset_id: int
    weights_id: int
    properties: object = None  # hyperparameter overrides (§10)
    task_manager: object = None


def launch_training(
    database: Database, user: User, order: TrainingOrder, storage: Path, jobs: JobQueue
) -> tuple[str, int]:
    """`train`: the new weights, process and training record committed, then the job queued; (process id, weights
    id)."""
    with database.transaction() as db:
        process, weights = create_training(db, db.merge(user), order, storage)
        process_id, weights_id = process.id, weights.id
    jobs.submit_process(ProcessType.TRAINING, process_id, database.url, storage)
    return process_id, weights_id


def create_training(db: Session, user: User, order: TrainingOrder, storage: Path) -> tuple[Process, Weights]:
    """Every check of `POST train` in the documented order, then the new weights, process and training record."""
    project = get_project(db, user, order.project_id, need=OWN)
    parent = get_weights(db, user, order.weights_id)
    if not parent.is_active:
        raise InputError(f"Weights {parent.id} are not ready")
    dataset = get_dataset(db, user, order.dataset_id)
    model = db.get(ArchModel, parent.model_id)
    if model.task_id != dataset.task_id:
        raise InputError("Model and dataset must belong to the same task")
    if model.task_id != project.task_id:
        project_task, model_task = get_task(db, project.task_id).name, get_task(db, model.task_id).name
        raise InputError(f"Project task {project_task} does not match model task {model_task}")
    if model.task_id not in TRAINABLE_TASKS:
        raise InputError(f"this server cannot train {get_task(db, model.task_id).name} models")
    spec = spec_of(dataset, storage)
    training_ids = spec.ids("training")
    if not training_ids:
        raise InputError(f"dataset {dataset.id} has an empty training split")
    unlabelled = [i for i in training_ids if spec.samples[i].label is None and not spec.samples[i].values]
    if unlabelled:
        raise InputError(f"dataset {dataset.id}: training image {unlabelled[0]} has no label")
    input_dims, output_dims = _graph_dims(weights_file(storage, parent.id))
    first = spec.samples[training_ids[0]].location
    check_channels(dataset, parent, input_dims, len(first) if isinstance(first, list) else 1)
    spatial = input_dims[-2:]
    static = (spatial[0], spatial[1]) if None not in spatial and 0 not in spatial else None
    resizable = static is not None and len(input_dims) == 4  # 2-D weights: a new size is checked below
    user_values = parse_user_properties(db, order.properties)
    resolved = resolve(
        db,
        model_id=model.id,
        dataset_id=dataset.id,
        task_id=model.task_id,
        user_values=user_values,
        static_size=None if resizable else static,
    )
    if resizable:
        check_input_size(weights_file(storage, parent.id), static, output_dims, resolved)
    plan = fine_tuning(db, parent, dataset)
    if plan == INHERIT and model.task_id in (TaskId.CLASSIFICATION, TaskId.MULTILABEL):
        classes = _names(dataset.classes)
        if len(output_dims) == 2 and output_dims[1] and classes and output_dims[1] != len(classes):
            raise InputError(
                f"weights {parent.id} output {output_dims[1]} classes but dataset {dataset.id} has {len(classes)}"
            )
    if order.task_manager not in (None, "CELERY"):
        raise InputError(f"task_manager {order.task_manager!r} is not supported")

    stamp = now()
    weights = Weights(
        name=f"{model.name}_{dataset.name}_{stamp:%Y-%m-%d_%H:%M:%S}",
        model_id=model.id,
        dataset_id=dataset.id,
        pretrained_on=parent.id,
        public=False,
        layer_to_remove=FINAL_LAYER if plan == NEW_HEAD else parent.layer_to_remove,
        is_active=False,
        classes=dataset.classes,
        members=[WeightsMember(user_id=user.id, permission=OWN)],
    )
    db.add(weights)
    db.flush()
    settings = {**resolved, "fine_tuning": plan, "cut_at": parent.layer_to_remove if plan == NEW_HEAD else None}
    process = Process(
        id=str(uuid.uuid4()),
        process_type=ProcessType.TRAINING,
        project_id=project.id,
        user_id=user.id,
        weights_id=parent.id,
        dataset_id=dataset.id,
        state=ProcessState.PENDING,
        settings=json.dumps(settings),
        created=stamp,
        updated=stamp,
    )
    db.add(process)
    db.flush()
    weights.process_id = process.id
    ids = {p.name: p.id for p in db.scalars(select(Property))}
    training = Training(
        process_id=process.id,
        weights_id=weights.id,
        settings=[TrainingSetting(property_id=ids[name], value=value) for name, value in resolved.items()],
    )
    db.add(training)
    db.flush()
    return process, weights


def list_trainings(db: Session, user: User, project_id: int, weights_id: int | None) -> list[Training]:
    get_project(db, user, project_id)
    query = select(Training).join(Process, Training.process_id == Process.id).where(Process.project_id == project_id)
    if weights_id is not None:
        query = query.where(Training.weights_id == weights_id)
    return list(db.scalars(query.order_by(Training.id)))


@dataclass(frozen=True)
class ProducedWeights:
    """What a training produces: weights (None once deleted) of a model, trained on a dataset."""

    dataset_id: int | None
    model_id: int | None
    weights_id: int | None


def training_settings(
    db: Session, user: User, training_id: int, property_id: int | None
) -> tuple[list[TrainingSetting], ProducedWeights | None]:
    """A visible training's stored settings (only `property_id`'s when given); without `property_id`, also what
    the training produced."""
    training = db.get(Training, training_id)
    if training is None:
        raise NotFound(f"training {training_id} not found")
    get_project(db, user, training.process.project_id)
    stored = [s for s in training.settings if property_id is None or s.property_id == property_id]
    if property_id is not None:
        return stored, None
    weights = db.get(Weights, training.weights_id) if training.weights_id else None
    model_id = weights.model_id if weights else None
    return stored, ProducedWeights(training.process.dataset_id, model_id, training.weights_id)
