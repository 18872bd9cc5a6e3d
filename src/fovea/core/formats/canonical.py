"""Fovea's own JSON for a prediction: plain, lossless, round-trippable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fovea.core.formats.masks import bbox, rle_decode, rle_encode
from fovea.core.predictions import Prediction, Task


def to_canonical(prediction: Prediction) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task": str(prediction.task),
        "size": list(prediction.size),
        "source": prediction.source,
    }
    names = prediction.class_names
    if prediction.task in (Task.CLASSIFICATION, Task.MULTILABEL):
        out["classes"] = [
            {"id": int(i), "name": names[int(i)], "score": float(s)}
            for i, s in zip(prediction.labels, prediction.scores, strict=True)
        ]
    elif prediction.task is Task.DETECTION:
        out["objects"] = [
            {"id": int(i), "name": names[int(i)], "score": float(s), "box": [round(float(v), 2) for v in box]}
            for i, s, box in zip(prediction.labels, prediction.scores, prediction.boxes, strict=True)
        ]
    elif prediction.task is Task.SEGMENTATION:
        out["masks"] = []
        masks = prediction.masks if prediction.masks is not None else []
        for i, s, mask in zip(prediction.labels, prediction.scores, masks, strict=True):
            planes = mask.reshape(-1, *mask.shape[-2:])
            out["masks"].append(
                {
                    "id": int(i),
                    "name": names[int(i)],
                    "score": float(s),
                    "area": int(mask.sum()),
                    "bbox": bbox(planes.any(axis=0)),
                    "rle": [rle_encode(p) for p in planes] if mask.ndim == 3 else rle_encode(mask),
                }
            )
    else:
        out["values"] = {k: float(v) for k, v in prediction.values.items()}
    return out


def from_canonical(data: dict[str, Any], class_names: Sequence[str]) -> Prediction:
    task = Task(data["task"])
    size = tuple(data["size"])
    prediction = Prediction(task=task, size=size, class_names=tuple(class_names), source=data.get("source", ""))
    rows = data.get("classes") or data.get("objects") or data.get("masks") or []
    prediction.labels = np.array([r["id"] for r in rows], np.int64)
    prediction.scores = np.array([r["score"] for r in rows], np.float32)
    if task is Task.DETECTION:
        prediction.boxes = np.array([r["box"] for r in rows], np.float32).reshape(-1, 4)
    elif task is Task.SEGMENTATION:
        masks = []
        for r in rows:
            rle = r["rle"]
            masks.append(np.stack([rle_decode(p) for p in rle]) if isinstance(rle, list) else rle_decode(rle))
        prediction.masks = np.stack(masks) if masks else np.zeros((0, *size), bool)
    elif task is Task.REGRESSION:
        prediction.values = dict(data["values"])
    return prediction
