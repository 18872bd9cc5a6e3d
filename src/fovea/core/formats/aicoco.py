"""AiCOCO output (FLaVor's `/invocations` contract; see reference/aicoco-invocations-protocol.md §5-7)."""

from __future__ import annotations

import copy
import math
import secrets
import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from fovea.core.card import ModelCard
from fovea.core.formats.masks import outer_contours
from fovea.core.predictions import Prediction, Task

_ALPHABET = string.ascii_letters + string.digits + "_-"


def new_id() -> str:
    """A nanoid-style id: 21 characters of A-Za-z0-9_- from a cryptographic RNG."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(21))


def aicoco_categories(card: ModelCard) -> list[dict[str, Any]]:
    """One entry per class in index order, then one per distinct supercategory."""
    supers: dict[str, str] = {}
    for info in card.classes:
        if info.supercategory and info.supercategory not in supers:
            supers[info.supercategory] = new_id()
    categories = []
    for info in card.classes:
        entry: dict[str, Any] = {
            "id": new_id(),
            "name": info.name,
            "supercategory_id": supers.get(info.supercategory) if info.supercategory else None,
            "display": info.display,
        }
        if info.color is not None:
            entry["color"] = "#{:02X}{:02X}{:02X}".format(*info.color)
        categories.append(entry)
    categories += [{"id": i, "name": name, "supercategory_id": None} for name, i in supers.items()]
    return categories


def aicoco_regressions(card: ModelCard) -> list[dict[str, Any]]:
    return [{"id": new_id(), "name": name, "superregression_id": None} for name in card.regressions]


def to_aicoco(predictions: Sequence[Prediction], images: Sequence[dict[str, Any]], card: ModelCard) -> dict[str, Any]:
    """The AiCOCO object for `predictions` on the request's image entries.

    2-D: one prediction per entry, in the same order. A volume: one prediction whose first axis runs
    over `images` (slice order).
    """
    entries = [copy.deepcopy(dict(image)) for image in images]
    categories = aicoco_categories(card)
    regressions = aicoco_regressions(card)
    class_ids = [c["id"] for c in categories[: len(card.classes)]]
    out = _Builder(entries, class_ids, [r["id"] for r in regressions])
    volume = len(predictions) == 1 and len(predictions[0].size) == 3
    if volume:
        out.add(predictions[0], list(range(len(entries))))
    else:
        if len(predictions) != len(entries):
            raise ValueError(f"{len(predictions)} predictions for {len(entries)} image entries")
        for i, prediction in enumerate(predictions):
            out.add(prediction, [i])
    return {
        "images": entries,
        "annotations": out.annotations,
        "categories": categories,
        "regressions": regressions,
        "objects": out.objects,
        "meta": out.meta,
    }


class _Builder:
    def __init__(self, entries: list[dict[str, Any]], class_ids: list[str], regression_ids: list[str]) -> None:
        self.entries = entries
        self.class_ids = class_ids
        self.regression_ids = regression_ids
        self.annotations: list[dict[str, Any]] = []
        self.objects: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {"category_ids": None, "regressions": None}

    def add(self, prediction: Prediction, slots: list[int]) -> None:
        task = prediction.task
        if task in (Task.CLASSIFICATION, Task.MULTILABEL):
            labels = prediction.labels[:1] if task is Task.CLASSIFICATION else np.sort(prediction.labels)
            self._image_level(slots, "category_ids", [self.class_ids[int(i)] for i in labels])
        elif task is Task.REGRESSION:
            values = []
            for regression_id, value in zip(self.regression_ids, prediction.values.values(), strict=True):
                if not math.isfinite(value):
                    raise ValueError("the model produced a non-finite regression value")
                values.append({"regression_id": regression_id, "value": float(value)})
            self._image_level(slots, "regressions", values)
        elif task is Task.DETECTION:
            self._boxes(prediction, self.entries[slots[0]]["id"])
        else:
            self._masks(prediction, [self.entries[s]["id"] for s in slots])

    def _image_level(self, slots: list[int], key: str, value: list[Any]) -> None:
        """One image: the image; several (a series): the series meta (FLaVor's rule)."""
        if len(slots) == 1:
            self.entries[slots[0]][key] = value
        else:
            self.meta[key] = value

    def _boxes(self, prediction: Prediction, image_id: str) -> None:
        h, w = prediction.height, prediction.width
        for box, label, score in zip(prediction.boxes, prediction.labels, prediction.scores, strict=True):
            object_id = new_id()
            self.objects.append(
                {
                    "id": object_id,
                    "category_ids": [self.class_ids[int(label)]],
                    "regressions": None,
                    "confidence": float(score),
                }
            )
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            x1, x2 = sorted((min(max(x1, 0), w), min(max(x2, 0), w)))
            y1, y2 = sorted((min(max(y1, 0), h), min(max(y2, 0), h)))
            self.annotations.append(_annotation(image_id, object_id, bbox=[[x1, y1, x2, y2]]))

    def _masks(self, prediction: Prediction, image_ids: list[str]) -> None:
        masks = prediction.masks if prediction.masks is not None else []
        for label, mask in zip(prediction.labels, masks, strict=True):
            planes = mask if mask.ndim == 3 else mask[None]
            object_id = new_id()
            self.objects.append({"id": object_id, "category_ids": [self.class_ids[int(label)]], "regressions": None})
            for image_id, plane in zip(image_ids, planes, strict=True):
                if plane.any():
                    self.annotations.append(_annotation(image_id, object_id, segmentation=outer_contours(plane)))


def _annotation(image_id: str, object_id: str, *, bbox: Any = None, segmentation: Any = None) -> dict[str, Any]:
    return {
        "id": new_id(),
        "image_id": image_id,
        "object_id": object_id,
        "iscrowd": 0,
        "bbox": bbox,
        "segmentation": segmentation,
    }
