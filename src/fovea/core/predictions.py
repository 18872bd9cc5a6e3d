"""The canonical prediction: what a model found in one image or volume, in ORIGINAL pixel coordinates.

One class for all tasks keeps formatters and transports simple: a prediction is a list of findings
(`labels` with `scores`), plus per-task geometry (`boxes` for detection, `masks` for segmentation) and
`values` for regression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class Task(StrEnum):
    CLASSIFICATION = "classification"
    MULTILABEL = "multilabel"
    DETECTION = "detection"
    SEGMENTATION = "segmentation"
    REGRESSION = "regression"


def _empty(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


@dataclass(slots=True, kw_only=True)
class Prediction:
    """Findings for one input.

    - classification / multilabel: `labels` are the chosen class indices, best first, with `scores`;
      `probabilities` holds the full per-class vector.
    - detection: one row per object: `boxes` (N, 4) as x1, y1, x2, y2 in original pixels, `labels`, `scores`.
    - segmentation: one mask per class present: `masks` (N, *size) bool, `labels`, `scores` (mean confidence
      over the mask).
    - regression: `values` maps each output name to its scalar.
    """

    task: Task
    size: tuple[int, ...]  # original (height, width) or (depth, height, width)
    class_names: Sequence[str] = ()
    source: str = ""
    labels: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    scores: np.ndarray = field(default_factory=lambda: _empty((0,), np.float32))
    probabilities: np.ndarray | None = None
    boxes: np.ndarray = field(default_factory=lambda: _empty((0, 4), np.float32))
    masks: np.ndarray | None = None
    values: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.task = Task(self.task)  # accept the plain string too, so identity checks hold
        self.size = tuple(int(v) for v in self.size)

    @property
    def names(self) -> list[str]:
        """Class names of the findings, in order."""
        return [self.class_names[int(i)] for i in self.labels]

    @property
    def height(self) -> int:
        return self.size[-2]

    @property
    def width(self) -> int:
        return self.size[-1]

    def __len__(self) -> int:
        return len(self.labels)
