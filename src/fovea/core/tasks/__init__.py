"""Post-processing per task: raw network outputs to canonical `Prediction`s in original pixels.

Each task module exposes `decode(card, outputs, geometries, settings) -> list[Prediction]`, where
`outputs` are the network's output arrays in the card decoder's order and `geometries` has one entry per
image of the batch. `decode_volume` does the same for a 3-D model's output on one volume.
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


def decode_volume(
    card: ModelCard, outputs: Sequence[np.ndarray], size: tuple[int, int, int], settings: dict[str, Any]
) -> Prediction:
    """A 3-D model's outputs on one volume (a batch of one): masks over the volume's (D, H, W) for segmentation,
    one class ranking or one set of values for the whole volume otherwise."""
    if card.task is Task.SEGMENTATION:
        return segmentation.decode_volume(card, outputs[0], size, settings)
    if card.task in (Task.CLASSIFICATION, Task.MULTILABEL):
        return classification.decode_sizes(card, outputs, [size], settings)[0]
    if card.task is Task.REGRESSION:
        return regression.decode_sizes(card, outputs, [size])[0]
    raise ValueError(f"a 3-D {card.task} model is not supported")
