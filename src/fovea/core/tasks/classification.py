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
    scores = outputs[0].reshape(len(geometries), -1).astype(np.float32)
    n_classes = len(card.classes)
    if scores.shape[1] != n_classes:
        raise ValueError(f"model gives {scores.shape[1]} scores but its card names {n_classes} classes")
    probabilities = ACTIVATIONS[card.decoder.kind](scores)
    allowed = class_mask(card, settings)
    ranked = np.where(allowed, probabilities, -np.inf) if allowed is not None else probabilities
    order = np.argsort(-ranked, axis=1, kind="stable")
    predictions = []
    for i, geometry in enumerate(geometries):
        ranked_i = ranked[i, order[i]]
        if card.task is Task.MULTILABEL:
            keep = order[i][ranked_i >= settings["threshold"]]
        else:
            keep = order[i][: settings["top_k"]]
            keep = keep[np.isfinite(ranked[i, keep])]
        predictions.append(
            Prediction(
                task=card.task,
                size=geometry.original_size,
                class_names=card.class_names,
                labels=keep.astype(np.int64),
                scores=probabilities[i, keep],
                probabilities=probabilities[i],
            )
        )
    return predictions
