"""AiCOCO output (FLaVor's `/invocations` contract; see reference/aicoco-invocations-protocol.md §5-7)."""

from __future__ import annotations

import copy
import math
import secrets
import string
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from fovea.core.card import ModelCard
from fovea.core.formats.masks import outer_contours
from fovea.core.predictions import Prediction, Task

_ALPHABET = string.ascii_letters + string.digits + "_-"
# Byte -> symbol by its low 6 bits: 64 symbols divide 256, so random bytes give uniform symbols.
_SYMBOLS = bytes(ord(_ALPHABET[b % 64]) for b in range(256))
_ID_LENGTH = 21


def new_id() -> str:
    """A nanoid-style id: 21 characters of A-Za-z0-9_- from a cryptographic RNG."""
    return secrets.token_bytes(_ID_LENGTH).translate(_SYMBOLS).decode("ascii")


def new_ids(count: int) -> list[str]:
    """`count` ids like `new_id`'s from one read of the RNG: a model with 1000 classes needs 1000 per response,
    which symbol by symbol (`secrets.choice`) took ~35 ms of the event loop."""
    text = secrets.token_bytes(_ID_LENGTH * count).translate(_SYMBOLS).decode("ascii")
    return [text[i : i + _ID_LENGTH] for i in range(0, len(text), _ID_LENGTH)]


def aicoco_categories(card: ModelCard) -> list[dict[str, Any]]:
    """One entry per class in index order, then one per distinct supercategory; fresh ids every call."""
    classes, supers = _class_template(card)
    ids = new_ids(len(classes) + len(supers))
    super_ids = dict(zip(supers, ids[len(classes) :], strict=True))
    categories = [
        {"id": class_id, "name": name, "supercategory_id": super_ids.get(supercategory), **rest}
        for class_id, (name, supercategory, rest) in zip(ids[: len(classes)], classes, strict=True)
    ]
    categories += [{"id": i, "name": name, "supercategory_id": None} for name, i in super_ids.items()]
    return categories


# Cards' class entries without ids, by id(card); the card is held too, so its id names no other card meanwhile.
_TEMPLATES: dict[int, tuple[ModelCard, list[tuple[str, str | None, dict[str, Any]]], list[str]]] = {}
_TEMPLATES_KEPT = 16
_TEMPLATES_LOCK = threading.Lock()


def _class_template(card: ModelCard) -> tuple[list[tuple[str, str | None, dict[str, Any]]], list[str]]:
    """(name, supercategory, other keys) per class and the distinct supercategories, built once per card: reading
    a thousand classes' fields from the card took most of a response's time on the event loop."""
    found = _TEMPLATES.get(id(card))
    if found is not None and found[0] is card:
        return found[1], found[2]
    classes = []
    for info in card.classes:
        rest: dict[str, Any] = {"display": info.display}
        if info.color is not None:
            rest["color"] = "#{:02X}{:02X}{:02X}".format(*info.color)
        classes.append((info.name, info.supercategory or None, rest))
    supers = list(dict.fromkeys(sc for _, sc, _ in classes if sc))
    with _TEMPLATES_LOCK:
        while len(_TEMPLATES) >= _TEMPLATES_KEPT:
            _TEMPLATES.pop(next(iter(_TEMPLATES)))
        _TEMPLATES[id(card)] = (card, classes, supers)
    return classes, supers


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
    else:  # one entry per image, or per slice of each volume in turn
        spans = [p.size[0] if len(p.size) == 3 else 1 for p in predictions]
        if sum(spans) != len(entries):
            raise ValueError(f"{len(predictions)} predictions for {len(entries)} image entries")
        start = 0
        for prediction, span in zip(predictions, spans, strict=True):
            out.add(prediction, list(range(start, start + span)), series=False)
            start += span
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

    def add(self, prediction: Prediction, slots: list[int], *, series: bool = True) -> None:
        """`slots`: the entries the prediction covers; `series`: they are the document's one series."""
        task = prediction.task
        if task in (Task.CLASSIFICATION, Task.MULTILABEL):
            labels = prediction.labels[:1] if task is Task.CLASSIFICATION else np.sort(prediction.labels)
            self._image_level(slots, "category_ids", [self.class_ids[int(i)] for i in labels], series)
        elif task is Task.REGRESSION:
            values = []
            for regression_id, value in zip(self.regression_ids, prediction.values.values(), strict=True):
                if not math.isfinite(value):
                    raise ValueError("the model produced a non-finite regression value")
                values.append({"regression_id": regression_id, "value": float(value)})
            self._image_level(slots, "regressions", values, series)
        elif task is Task.DETECTION:
            self._boxes(prediction, self.entries[slots[0]]["id"])
        else:
            self._masks(prediction, [self.entries[s]["id"] for s in slots])

    def _image_level(self, slots: list[int], key: str, value: list[Any], series: bool) -> None:
        """One image: the image; several (a series): the series meta (FLaVor's rule), or each of its slices when
        the document holds several volumes."""
        if len(slots) > 1 and series:
            self.meta[key] = value
        else:
            for slot in slots:
                self.entries[slot][key] = value

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
