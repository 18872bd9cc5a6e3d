"""Supervisely annotation JSON and ProjectMeta (reference/supervisely-session-protocol.md §4-5)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fovea.core.card import ModelCard
from fovea.core.formats.masks import encode_bitmap, outer_contours
from fovea.core.predictions import Prediction, Task

CONFIDENCE_TAG = {
    "name": "confidence",
    "value_type": "any_number",
    "color": "#0F8A79",
    "hotkey": "",
    "applicable_type": "all",
    "classes": [],
    "target_type": "all",
}
_SHAPES = {Task.DETECTION: "rectangle", Task.SEGMENTATION: "bitmap"}


def _hex(color: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*color)


def supervisely_project_meta(card: ModelCard, *, polygons: bool = False) -> dict[str, Any]:
    """Output classes (detection, segmentation) or tag metas (classification, regression)."""
    tags = [CONFIDENCE_TAG]
    classes = []
    shape = "polygon" if polygons and card.task is Task.SEGMENTATION else _SHAPES.get(card.task)
    if shape:
        classes = [
            {
                "title": c.name,
                "shape": shape,
                "color": _hex(color),
                "description": "",
                "geometry_config": {},
                "hotkey": "",
            }
            for c, color in zip(card.classes, card.colors, strict=True)
            if c.display
        ]
    else:
        names = card.regressions if card.task is Task.REGRESSION else card.class_names
        tags += [
            {**CONFIDENCE_TAG, "name": name, "color": _hex(color)}
            for name, color in zip(names, _cycle(card), strict=False)
        ]
    return {
        "classes": classes,
        "tags": tags,
        "projectSettings": {"multiView": {"enabled": False, "tagName": None, "tagId": None, "isSynced": False}},
    }


def _cycle(card: ModelCard) -> list[tuple[int, int, int]]:
    colors = list(card.colors) or [(15, 138, 121)]
    count = max(len(card.regressions), len(card.classes))
    return [colors[i % len(colors)] for i in range(count)]


def to_supervisely_annotation(prediction: Prediction, card: ModelCard, *, polygons: bool = False) -> dict[str, Any]:
    """One image's annotation; a volume prediction must be split into slices first."""
    h, w = prediction.height, prediction.width
    tags: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    if prediction.task in (Task.CLASSIFICATION, Task.MULTILABEL):
        chosen = zip(prediction.labels, prediction.scores, strict=True)
        if prediction.task is Task.CLASSIFICATION:
            chosen = list(chosen)[:1]
        tags = [{"name": card.class_names[int(label)], "value": float(score)} for label, score in chosen]
    elif prediction.task is Task.REGRESSION:
        tags = [{"name": name, "value": float(value)} for name, value in prediction.values.items()]
    elif prediction.task is Task.DETECTION:
        for box, label, score in zip(prediction.boxes, prediction.labels, prediction.scores, strict=True):
            objects.append(_label(card.class_names[int(label)], "rectangle", _rectangle(box, w, h), float(score)))
    else:
        for label, mask in zip(
            prediction.labels, prediction.masks if prediction.masks is not None else [], strict=True
        ):
            if not mask.any():
                continue
            name = card.class_names[int(label)]
            if polygons:
                for contour in outer_contours(mask):
                    points = np.asarray(contour).reshape(-1, 2).tolist()
                    if len(points) >= 3:
                        objects.append(_label(name, "polygon", {"points": {"exterior": points, "interior": []}}))
            else:
                data, origin = encode_bitmap(mask)
                objects.append(_label(name, "bitmap", {"bitmap": {"origin": origin, "data": data}}))
    return {
        "description": "",
        "size": {"height": h, "width": w},
        "tags": tags,
        "objects": objects,
        "customBigData": {},
    }


def _rectangle(box: np.ndarray, w: int, h: int) -> dict[str, Any]:
    """xyxy (exclusive right/bottom) to inclusive Supervisely corners: at least 1 px, inside the image."""
    left = min(max(round(float(box[0])), 0), w - 1)
    top = min(max(round(float(box[1])), 0), h - 1)
    right = min(max(round(float(box[2])) - 1, left), w - 1)
    bottom = min(max(round(float(box[3])) - 1, top), h - 1)
    return {"points": {"exterior": [[left, top], [right, bottom]], "interior": []}}


def _label(
    class_title: str, geometry_type: str, geometry: dict[str, Any], confidence: float | None = None
) -> dict[str, Any]:
    tags = [] if confidence is None else [{"name": "confidence", "value": confidence}]
    return {
        "classTitle": class_title,
        "description": "",
        "tags": tags,
        "geometryType": geometry_type,
        "shape": geometry_type,
        "nnCreated": True,
        "nnUpdated": True,
        **geometry,
    }
