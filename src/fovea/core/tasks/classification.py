"""Classification (top-K) and multi-label (threshold) from one score vector per image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fovea.core.card import ModelCard
from fovea.core.geometry import Geometry
from fovea.core.predictions import Prediction, Task
from fovea.core.settings import class_mask


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


ACTIVATIONS = {"softmax": softmax, "sigmoid": sigmoid, "identity": lambda x: x}


def decode(
    card: ModelCard, outputs: Sequence[np.ndarray], geometries: Sequence[Geometry], settings: dict[str, Any]
) -> list[Prediction]:
    return decode_sizes(card, outputs, [geometry.original_size for geometry in geometries], settings)


def decode_sizes(
    card: ModelCard, outputs: Sequence[np.ndarray], sizes: Sequence[tuple[int, ...]], settings: dict[str, Any]
) -> list[Prediction]:
    """One prediction per input of the batch; `sizes` are the inputs' (height, width) or (depth, height, width)."""
    scores = outputs[0].reshape(len(sizes), -1).astype(np.float32)
    n_classes = len(card.classes)
    if scores.shape[1] != n_classes:
        raise ValueError(f"model gives {scores.shape[1]} scores but its card names {n_classes} classes")
    probabilities = ACTIVATIONS[card.decoder.kind](scores)
    allowed = class_mask(card, settings)
    ranked = np.where(allowed, probabilities, -np.inf) if allowed is not None else probabilities
    order = np.argsort(-ranked, axis=1, kind="stable")
    predictions = []
    for i, size in enumerate(sizes):
        ranked_i = ranked[i, order[i]]
        if card.task is Task.MULTILABEL:
            keep = order[i][ranked_i >= settings["threshold"]]
        else:
            keep = order[i][: settings["top_k"]]
            keep = keep[np.isfinite(ranked[i, keep])]
        predictions.append(
            Prediction(
                task=card.task,
                size=size,
                class_names=card.class_names,
                labels=keep.astype(np.int64),
                scores=probabilities[i, keep],
                probabilities=probabilities[i],
            )
        )
    return predictions
