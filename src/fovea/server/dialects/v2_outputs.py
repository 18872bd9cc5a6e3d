"""Post-processed V2 outputs (reference/open-inference-protocol.md §13): predictions as padded tensors."""

from __future__ import annotations

from typing import Any

import numpy as np

from fovea.core.predictions import Prediction, Task

POSTPROCESSED = {
    Task.CLASSIFICATION: ("scores", "labels"),
    Task.MULTILABEL: ("scores", "labels"),
    Task.DETECTION: ("boxes", "scores", "labels", "num_detections", "image_sizes"),
    Task.SEGMENTATION: ("masks", "image_sizes"),
    Task.REGRESSION: ("values",),
}


def postprocessed_specs(task: Task, n_classes: int, n_values: int) -> list[dict[str, Any]]:
    """Name, datatype and shape of each post-processed output (-1: varies with the request)."""
    specs = {
        "scores": ("FP32", [-1, -1] if task is Task.DETECTION else [-1, n_classes]),
        "labels": ("INT64", [-1, -1]),
        "boxes": ("FP32", [-1, -1, 4]),
        "num_detections": ("INT32", [-1]),
        "image_sizes": ("INT32", [-1, 2]),
        "masks": ("INT32" if n_classes > 255 else "UINT8", [-1, -1, -1]),
        "values": ("FP32", [-1, n_values]),
    }
    return [{"name": name, "datatype": specs[name][0], "shape": specs[name][1]} for name in POSTPROCESSED[task]]


def postprocessed_names(task: Task, raw_outputs: list[str]) -> dict[str, str]:
    """Public name -> canonical name; a name a raw output already uses gets a `post_` prefix."""
    return {(f"post_{name}" if name in raw_outputs else name): name for name in POSTPROCESSED[task]}


def postprocessed(name: str, predictions: list[Prediction], n_classes: int) -> np.ndarray:
    n = len(predictions)
    task = predictions[0].task if predictions else Task.CLASSIFICATION
    if name == "image_sizes":
        return np.array([p.size[-2:] for p in predictions], np.int32).reshape(n, 2)
    if name == "values":
        return np.array([list(p.values.values()) for p in predictions], np.float32)
    if task in (Task.CLASSIFICATION, Task.MULTILABEL):
        if name == "scores":
            return np.stack([p.probabilities for p in predictions]).astype(np.float32)
        k = max((len(p.labels) for p in predictions), default=0)
        labels = np.full((n, k), -1, np.int64)
        for i, p in enumerate(predictions):
            labels[i, : len(p.labels)] = p.labels
        return labels
    if task is Task.DETECTION:
        k = max((len(p.labels) for p in predictions), default=0)
        if name == "num_detections":
            return np.array([len(p.labels) for p in predictions], np.int32)
        if name == "boxes":
            out = np.zeros((n, k, 4), np.float32)
            for i, p in enumerate(predictions):
                out[i, : len(p.labels)] = p.boxes
            return out
        fill, dtype = (0, np.float32) if name == "scores" else (-1, np.int64)
        out = np.full((n, k), fill, dtype)
        for i, p in enumerate(predictions):
            out[i, : len(p.labels)] = p.scores if name == "scores" else p.labels
        return out
    # segmentation: a class index per pixel, mixed sizes padded
    wide = n_classes > 255
    h = max(p.size[-2] for p in predictions)
    w = max(p.size[-1] for p in predictions)
    out = np.full((n, h, w), -1 if wide else 255, np.int32 if wide else np.uint8)
    for i, p in enumerate(predictions):
        ph, pw = p.size[-2:]
        plane = out[i, :ph, :pw]
        plane[...] = 0
        for label, mask in zip(p.labels, p.masks if p.masks is not None else [], strict=True):
            plane[mask] = label
    return out
