"""Detection decoders and class-aware NMS; boxes end in original-image pixels.

Layouts (per batch):
- `yolov8`: one output (N, 4 + C, A): cx, cy, w, h in network pixels, then per-class scores.
- `yolov5`: one output (N, A, 5 + C): cx, cy, w, h, objectness, then per-class probabilities.
- `boxes_scores`: boxes (N, A, 4) and per-class scores (N, A, C).
- `boxes_labels_scores`: boxes (N, A, 4), labels (N, A), scores (N, A) (torchvision style; the batch axis may
  be absent for a single image).
For the last two the card's `box_format` and `normalized_boxes` say how boxes are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from fovea.core.card import ModelCard
from fovea.core.geometry import Geometry
from fovea.core.predictions import Prediction, Task
from fovea.core.settings import class_mask


def to_xyxy(boxes: np.ndarray, box_format: str) -> np.ndarray:
    if box_format == "xyxy":
        return boxes
    out = np.empty_like(boxes)
    if box_format == "cxcywh":
        half = boxes[..., 2:4] / 2
        out[..., 0:2] = boxes[..., 0:2] - half
        out[..., 2:4] = boxes[..., 0:2] + half
    elif box_format == "xywh":
        out[..., 0:2] = boxes[..., 0:2]
        out[..., 2:4] = boxes[..., 0:2] + boxes[..., 2:4]
    else:
        raise ValueError(f"unknown box format {box_format!r}")
    return out


def _candidates(card: ModelCard, outputs: Sequence[np.ndarray], n: int) -> list[tuple[np.ndarray, ...]]:
    """Per image: (boxes xyxy in network pixels (A, 4), best label (A,), its score (A,))."""
    kind = card.decoder.kind
    if kind == "yolov8":
        raw = outputs[0].reshape(n, outputs[0].shape[-2], -1).transpose(0, 2, 1)  # (N, A, 4 + C)
        boxes, class_scores = to_xyxy(raw[..., :4], "cxcywh"), raw[..., 4:]
    elif kind == "yolov5":
        raw = outputs[0].reshape(n, -1, outputs[0].shape[-1])
        boxes, class_scores = to_xyxy(raw[..., :4], "cxcywh"), raw[..., 5:] * raw[..., 4:5]
    elif kind == "boxes_scores":
        boxes = _network_pixels(card, outputs[0].reshape(n, -1, 4))
        class_scores = outputs[1].reshape(n, boxes.shape[1], -1)
    else:  # boxes_labels_scores
        boxes = _network_pixels(card, outputs[0].reshape(n, -1, 4))
        labels = outputs[1].reshape(n, -1).astype(np.int64)
        scores = outputs[2].reshape(n, -1).astype(np.float32)
        return [(boxes[i], labels[i], scores[i]) for i in range(n)]
    labels = class_scores.argmax(axis=-1)
    scores = np.take_along_axis(class_scores, labels[..., None], axis=-1)[..., 0]
    return [(boxes[i], labels[i], scores[i].astype(np.float32)) for i in range(n)]


def _network_pixels(card: ModelCard, boxes: np.ndarray) -> np.ndarray:
    boxes = to_xyxy(boxes.astype(np.float32), card.decoder.box_format)
    if card.decoder.normalized_boxes:
        h, w = card.input.size[-2:]
        boxes = boxes * np.array([w, h, w, h], np.float32)
    return boxes


def nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_thres: float) -> np.ndarray:
    """Indices kept by class-aware non-maximum suppression, best score first (OpenCV's implementation)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64)
    keep = cv2.dnn.NMSBoxesBatched(xywh, scores.astype(np.float32), labels.astype(np.int32), 0.0, iou_thres)
    keep = np.asarray(keep, np.int64).reshape(-1)
    return keep[np.argsort(-scores[keep], kind="stable")]


def decode(
    card: ModelCard, outputs: Sequence[np.ndarray], geometries: Sequence[Geometry], settings: dict[str, Any]
) -> list[Prediction]:
    n_classes = len(card.classes)
    allowed = class_mask(card, settings)
    predictions = []
    for geometry, (boxes, labels, scores) in zip(geometries, _candidates(card, outputs, len(geometries)), strict=True):
        valid = (scores >= settings["conf_thres"]) & (labels >= 0) & (labels < n_classes)
        if allowed is not None:
            valid &= allowed[np.clip(labels, 0, n_classes - 1)]
        boxes, labels, scores = boxes[valid], labels[valid], scores[valid]
        keep = nms(boxes, scores, labels, settings["iou_thres"])[: settings["max_det"]]
        predictions.append(
            Prediction(
                task=Task.DETECTION,
                size=geometry.original_size,
                class_names=card.class_names,
                boxes=geometry.to_original_boxes(boxes[keep]),
                labels=labels[keep].astype(np.int64),
                scores=scores[keep].astype(np.float32),
            )
        )
    return predictions
