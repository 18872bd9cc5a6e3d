"""FLaVor's AiCOCO output strategies for custom models' `output_formatter` (seed 004).

Each strategy turns a model's raw output, in FLaVor's shapes, into the AiCOCO object of the reference
(aicoco-invocations-protocol.md §5-7), through the same builder as Fovea's own models:

- classification: a 0/1 vector over the categories (one-hot, or multi-hot for multi-label);
- regression: one value per regression target;
- detection (one 2-D image): `{"bbox_pred": [[x1, y1, x2, y2], ...], "cls_pred": [one-hot, ...],
  "confidence_score": [...]}` (scores optional);
- segmentation: an integer array `(classes, [slices,] height, width)`; in each class channel every positive value
  is one object (a semantic mask has just 1), drawn as outer contours on every slice where it has pixels.

`categories` and `regressions` are what `set_categories` / `set_regressions` return: `{"name", "supercategory_name",
"display", "color"}` and `{"name"}` dicts. Image-level results land on the image for one entry, in `meta` for a series.

Every strategy builds Fovea's canonical `Prediction` on the way. Inside `captured_predictions()` those predictions
are also recorded, whichever way the model's `output_formatter` called the strategy: that is how a custom model is
served through the dialects that speak predictions rather than AiCOCO (V2, Supervisely; see sessions/custom.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import numpy as np

from fovea.core.card import ModelCard
from fovea.core.formats.aicoco import to_aicoco
from fovea.core.predictions import Prediction, Task
from fovea.errors import FoveaError

__all__ = [
    "AiCOCOClassificationOutputStrategy",
    "AiCOCODetectionOutputStrategy",
    "AiCOCORegressionOutputStrategy",
    "AiCOCOSegmentationOutputStrategy",
    "captured_predictions",
    "strategy_card",
]

_DECODER = {"classification": "sigmoid", "detection": "boxes_labels_scores", "segmentation": "argmax"}
_UNBOUNDED = 2**31 - 1  # detection boxes are the model's own; nothing to clip them to


class OutputError(FoveaError):
    """A model output that does not fit its strategy: the model's fault, so a server answers 500."""


def strategy_card(
    task: str, categories: Sequence[Mapping[str, Any]] | None = None, regressions: Any = None
) -> ModelCard:
    """The model card a strategy of `task` builds its output with: the categories or regression names, in order.

    Strategies run on every call of a model, and checking a 1000-class card took ~4 ms of a ~19 ms call: cards are
    built once per distinct list (they are immutable)."""
    if task == "regression":
        return _card(task, (), tuple(r["name"] for r in regressions or []))
    return _card(task, tuple(_class_key(c) for c in categories or []), ())


def _class_key(category: Mapping[str, Any]) -> tuple[Any, ...]:
    color = category.get("color") or None
    return (
        category["name"],
        category.get("supercategory_name"),
        category.get("display", True),
        tuple(color) if isinstance(color, list) else color,
    )


@lru_cache(maxsize=64)
def _card(task: str, classes: tuple[tuple[Any, ...], ...], regressions: tuple[str, ...]) -> ModelCard:
    if task == "regression":
        return ModelCard(task="regression", regressions=list(regressions), decoder={"kind": "identity"})
    entries = [
        {"name": name, "supercategory": supercategory, "display": display, **({"color": color} if color else {})}
        for name, supercategory, display, color in classes
    ]
    return ModelCard(
        task="multilabel" if task == "classification" else task, classes=entries, decoder={"kind": _DECODER[task]}
    )


_captured: ContextVar[list[Prediction] | None] = ContextVar("fovea_captured_predictions", default=None)


@contextmanager
def captured_predictions() -> Iterator[list[Prediction]]:
    """A list that receives every prediction a strategy builds in this context (this thread or task)."""
    found: list[Prediction] = []
    token = _captured.set(found)
    try:
        yield found
    finally:
        _captured.reset(token)


def _formatted(prediction: Prediction, images: Sequence[dict[str, Any]], card: ModelCard) -> dict[str, Any]:
    captured = _captured.get()
    if captured is not None:
        captured.append(prediction)
    return to_aicoco([prediction], images, card)


def _image_level_size(images: Sequence[Any]) -> tuple[int, ...]:
    """One entry: a 2-D prediction on it; several: a volume whose slices are the entries (results go to `meta`)."""
    return (1, 1) if len(images) == 1 else (len(images), 1, 1)


class AiCOCOClassificationOutputStrategy:
    task = "classification"

    def __call__(
        self, model_out: Any, images: Sequence[dict[str, Any]], categories: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> dict[str, Any]:
        card = strategy_card(self.task, categories)
        scores = np.asarray(model_out, np.float32).reshape(-1)
        if len(scores) != len(card.classes):
            raise OutputError(f"a classification output needs {len(card.classes)} values, not {len(scores)}")
        labels = np.flatnonzero(scores > 0.5)
        prediction = Prediction(
            task=Task.MULTILABEL,
            size=_image_level_size(images),
            class_names=card.class_names,
            labels=labels,
            scores=scores[labels],
            probabilities=scores,
        )
        return _formatted(prediction, images, card)


class AiCOCORegressionOutputStrategy:
    task = "regression"

    def __call__(
        self, model_out: Any, images: Sequence[dict[str, Any]], regressions: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> dict[str, Any]:
        card = strategy_card(self.task, None, regressions)
        values = np.asarray(model_out, np.float64).reshape(-1)
        if len(values) != len(card.regressions):
            raise OutputError(f"a regression output needs {len(card.regressions)} values, not {len(values)}")
        named = dict(zip(card.regressions, values.tolist(), strict=True))
        return _formatted(Prediction(task=Task.REGRESSION, size=_image_level_size(images), values=named), images, card)


class AiCOCODetectionOutputStrategy:
    task = "detection"

    def __call__(
        self,
        model_out: Mapping[str, Any],
        images: Sequence[dict[str, Any]],
        categories: Sequence[Mapping[str, Any]],
        **kwargs: Any,
    ) -> dict[str, Any]:
        card = strategy_card(self.task, categories)
        if len(images) != 1:
            raise OutputError("detection takes one 2-D image")
        boxes = np.asarray(model_out.get("bbox_pred", []), np.float32).reshape(-1, 4)
        width = -1 if len(boxes) else len(card.classes)  # nothing found: an empty (0, classes) array
        classes = np.asarray(model_out.get("cls_pred", []), np.float32).reshape(len(boxes), width)
        scores = model_out.get("confidence_score")
        scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32).reshape(-1)
        if classes.shape[1:] != (len(card.classes),) or len(scores) != len(boxes):
            raise OutputError("bbox_pred, cls_pred and confidence_score must have one row per box")
        labels = classes.argmax(1)
        shown = np.array([card.classes[int(label)].display for label in labels], bool)
        order = np.argsort(-scores[shown], kind="stable")
        prediction = Prediction(
            task=Task.DETECTION,
            size=(_UNBOUNDED, _UNBOUNDED),
            class_names=card.class_names,
            boxes=boxes[shown][order],
            labels=labels[shown][order],
            scores=scores[shown][order],
        )
        return _formatted(prediction, images, card)


class AiCOCOSegmentationOutputStrategy:
    task = "segmentation"

    def __call__(
        self, model_out: Any, images: Sequence[dict[str, Any]], categories: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> dict[str, Any]:
        card = strategy_card(self.task, categories)
        out = np.asarray(model_out)
        if out.ndim not in (3, 4) or len(out) != len(card.classes):
            raise OutputError(f"a segmentation output is (classes, [slices,] height, width), not {out.shape}")
        if out.ndim == 4 and out.shape[1] != len(images):
            raise OutputError(f"{out.shape[1]} slices for {len(images)} image entries")
        if out.ndim == 3 and len(images) != 1:
            raise OutputError("a 2-D segmentation output takes one image entry")
        masks, labels = [], []
        for index, channel in enumerate(out):
            if not card.classes[index].display:
                continue
            for value in np.unique(channel[channel > 0]):
                masks.append(channel == value)
                labels.append(index)
        size = out.shape[1:]
        stacked = np.stack(masks) if masks else np.zeros((0, *size), bool)
        prediction = Prediction(
            task=Task.SEGMENTATION,
            size=size,
            class_names=card.class_names,
            masks=stacked,
            labels=np.array(labels, np.int64),
        )
        return _formatted(prediction, images, card)


STRATEGIES = {
    strategy.task: strategy
    for strategy in (
        AiCOCOClassificationOutputStrategy,
        AiCOCODetectionOutputStrategy,
        AiCOCORegressionOutputStrategy,
        AiCOCOSegmentationOutputStrategy,
    )
}
