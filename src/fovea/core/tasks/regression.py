"""Regression: named scalar outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fovea.core.card import ModelCard
from fovea.core.geometry import Geometry
from fovea.core.predictions import Prediction, Task


def decode(
    card: ModelCard, outputs: Sequence[np.ndarray], geometries: Sequence[Geometry], settings: dict[str, Any]
) -> list[Prediction]:
    return decode_sizes(card, outputs, [geometry.original_size for geometry in geometries])


def decode_sizes(card: ModelCard, outputs: Sequence[np.ndarray], sizes: Sequence[tuple[int, ...]]) -> list[Prediction]:
    """One prediction per input of the batch; `sizes` are the inputs' (height, width) or (depth, height, width)."""
    n = len(sizes)
    # One (N, R) output, or one (N,) / (N, 1) output per regression name.
    columns = np.concatenate([np.asarray(o, np.float64).reshape(n, -1) for o in outputs], axis=1)
    names = card.regressions
    if columns.shape[1] != len(names):
        raise ValueError(f"model gives {columns.shape[1]} values but its card names {len(names)} regressions")
    return [
        Prediction(
            task=Task.REGRESSION,
            size=size,
            values={name: float(v) for name, v in zip(names, columns[i], strict=True)},
        )
        for i, size in enumerate(sizes)
    ]
