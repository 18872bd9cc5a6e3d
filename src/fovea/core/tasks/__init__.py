"""Post-processing per task: raw network outputs to canonical `Prediction`s in original pixels.

Each task module exposes `decode(card, outputs, geometries, settings) -> list[Prediction]`, where
`outputs` are the network's output arrays in the card decoder's order and `geometries` has one entry per
image of the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fovea.core.card import ModelCard
from fovea.core.geometry import Geometry
from fovea.core.predictions import Prediction, Task
from fovea.core.tasks import classification, detection, regression, segmentation

Decoder = Callable[[ModelCard, Sequence[np.ndarray], Sequence[Geometry], dict[str, Any]], list[Prediction]]

DECODERS: dict[Task, Decoder] = {
    Task.CLASSIFICATION: classification.decode,
    Task.MULTILABEL: classification.decode,
    Task.DETECTION: detection.decode,
    Task.SEGMENTATION: segmentation.decode,
    Task.REGRESSION: regression.decode,
}


def decode(
    card: ModelCard, outputs: Sequence[np.ndarray], geometries: Sequence[Geometry], settings: dict[str, Any]
) -> list[Prediction]:
    """Predictions for a batch, one per geometry."""
    return DECODERS[card.task](card, outputs, geometries, settings)
