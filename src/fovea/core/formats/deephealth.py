"""The `value` of one row of a back-end inference process's output (reference/backend-api.md, `output`)."""

from __future__ import annotations

import json

from fovea.core.predictions import Prediction, Task


def to_deephealth_value(prediction: Prediction, mask_url: str | None = None) -> str:
    """Classification / multi-label: the per-class scores; regression: the values (both as a one-row JSON
    array string); detection: `[[x1, y1, x2, y2, score, class_index], ...]`; segmentation: the mask's URL.
    """
    if prediction.task in (Task.CLASSIFICATION, Task.MULTILABEL):
        if prediction.probabilities is None:
            raise ValueError("a classification output row needs the per-class probabilities")
        return json.dumps([[float(p) for p in prediction.probabilities]])
    if prediction.task is Task.REGRESSION:
        return json.dumps([[float(v) for v in prediction.values.values()]])
    if prediction.task is Task.DETECTION:
        rows = [
            [*(round(float(v), 2) for v in box), float(score), int(label)]
            for box, score, label in zip(prediction.boxes, prediction.scores, prediction.labels, strict=True)
        ]
        return json.dumps(rows)
    if mask_url is None:
        raise ValueError("a segmentation output row is the URL of its mask")
    return mask_url
