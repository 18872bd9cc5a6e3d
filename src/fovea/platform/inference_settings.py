"""The hyperparameters of an inference process, resolved and checked as backend-api.md §10 says.

Order: allowedProperties rows and global defaults (`hyperparams.resolve`), then the weights' card (its input size),
then the settings of the training that produced the weights, then the user's `properties`. The job applies what comes
out (jobs/inference.py): the input size, the Test augmentations (training/tta.py) and the Metric its Test lines report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fovea.core.card import ModelCard
from fovea.core.predictions import Task
from fovea.platform.enums import TASKS_BY_ID
from fovea.platform.errors import InputError
from fovea.platform.hyperparams import INFERENCE_RELEVANT, parse_user_properties, resolve
from fovea.platform.models import ArchModel, Property, Training, TrainingSetting, Weights
from fovea.platform.storage import weights_file

NEEDS = ("Batch size", "Input height", "Input width")


def resolve_inference_settings(
    db: Session, model: ArchModel, weights: Weights, dataset_id: int | None, properties: Any, storage: Path
) -> dict[str, str]:
    """The inference-relevant hyperparameters, resolved in §10's order: allowedProperties and global defaults, then
    the weights' card (its input size), then the settings of the training that produced the weights, then the
    user's `properties`. Every value is checked (other valid names are then ignored); the input size must equal a
    static one of the graph, and Test augmentations must suit the task."""
    layered = {**_card_values(db, weights, storage), **_training_values(db, weights)}
    layered.update({pid: value for pid, value in parse_user_properties(db, properties).items() if value is not None})
    resolved = resolve(
        db,
        model_id=model.id,
        dataset_id=dataset_id,
        task_id=model.task_id,
        user_values=layered,
        needs=NEEDS,
        static_size=_static_size(weights, storage),
    )
    _check_test_augmentations(resolved.get("Test augmentations"), model.task_id)
    return {name: value for name, value in resolved.items() if name in INFERENCE_RELEVANT}


def _property_ids(db: Session) -> dict[str, int]:
    return {prop.name: prop.id for prop in db.scalars(select(Property))}


def _card_values(db: Session, weights: Weights, storage: Path) -> dict[int, str]:
    """Input height and width from the weights' card (a 2-D input), else from the graph's static input size."""
    size = None
    if weights.card is not None:
        card = ModelCard.from_json(weights.card)
        size = card.input.size[-2:]  # a 3-D card's (height, width) too: its graph's static ones
    else:
        size = _static_size(weights, storage)
    if size is None:
        return {}
    ids = _property_ids(db)
    return {ids["Input height"]: str(size[0]), ids["Input width"]: str(size[1])}


def _training_values(db: Session, weights: Weights) -> dict[int, str]:
    """What the training that produced these weights ran with (inference-relevant properties only)."""
    query = (
        select(TrainingSetting.property_id, TrainingSetting.value)
        .join(Training, Training.id == TrainingSetting.training_id)
        .join(Property, Property.id == TrainingSetting.property_id)
        .where(Training.weights_id == weights.id, Property.name.in_(INFERENCE_RELEVANT))
    )
    return {pid: value for pid, value in db.execute(query)}


def _static_size(weights: Weights, storage: Path) -> tuple[int, int] | None:
    """The graph input's (height, width) when both are static, else None (the network takes any size)."""
    import onnx

    graph = onnx.load(str(weights_file(storage, weights.id)), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    first = next((i for i in graph.input if i.name not in initializers), None)
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in first.type.tensor_type.shape.dim] if first else []
    if len(dims) < 4:
        return None
    nhwc = weights.card is not None and ModelCard.from_json(weights.card).input.layout == "NHWC"
    height, width = dims[1:3] if nhwc else dims[-2:]
    return (height, width) if height > 0 and width > 0 else None


def _check_test_augmentations(text: str | None, task_id: int) -> None:
    """Segmentation and detection results must map back onto the image: only resizes and value maps (training.tta)."""
    if not text or not text.strip():
        return
    task = TASKS_BY_ID.get(task_id)
    if task not in (Task.SEGMENTATION, Task.DETECTION):
        return
    from fovea.training.tta import check_for_task  # the `train` extra, which any augmentation string needs

    try:
        check_for_task(text, task)
    except ValueError as exc:
        raise InputError(f"Invalid value for property 'Test augmentations': {exc}") from None
