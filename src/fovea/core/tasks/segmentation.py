"""Semantic segmentation: per-class masks in original pixels, for 2-D images and 3-D volumes.

`argmax` takes (N, C, H, W) class logits (or probabilities) and gives each pixel one class;
`sigmoid_threshold` takes (N, C, H, W) logits and gives each class its own, possibly overlapping, mask; a card's
`decoder.unclip_ratio` then grows each region of it, as DBNet text detectors need (see `unclip`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from fovea.core.card import ModelCard
from fovea.core.geometry import Geometry, resize_volume
from fovea.core.predictions import Prediction, Task
from fovea.core.settings import class_mask
from fovea.core.tasks.classification import sigmoid, softmax


def masks_from_label_map(
    label_map: np.ndarray, confidence: np.ndarray, n_classes: int, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, scores, masks) for the classes present in an integer label map of any dimension.

    `confidence` is the winning class's probability per pixel, at the same shape as `label_map`.
    """
    counts = np.bincount(label_map.ravel(), minlength=n_classes)[:n_classes]
    present = counts > 0
    if allowed is not None:
        present &= allowed
    labels = np.flatnonzero(present)
    sums = np.bincount(label_map.ravel(), weights=confidence.ravel(), minlength=n_classes)[:n_classes]
    scores = (sums[labels] / counts[labels]).astype(np.float32)
    masks = label_map[None] == labels.reshape(-1, *([1] * label_map.ndim))
    return labels.astype(np.int64), scores, masks


def _channels(card: ModelCard, raw: np.ndarray, n: int) -> np.ndarray:
    out = raw.reshape(n, -1, *raw.shape[-2:]) if raw.ndim == 3 else raw
    if out.shape[1] != len(card.classes):
        raise ValueError(f"model gives {out.shape[1]} channels but its card names {len(card.classes)} classes")
    return out.astype(np.float32, copy=False)


def decode(
    card: ModelCard, outputs: Sequence[np.ndarray], geometries: Sequence[Geometry], settings: dict[str, Any]
) -> list[Prediction]:
    logits = _channels(card, outputs[0], len(geometries))
    allowed = class_mask(card, settings)
    n_classes = len(card.classes)
    predictions = []
    for i, geometry in enumerate(geometries):
        if card.decoder.kind == "argmax":
            probabilities = softmax(np.moveaxis(logits[i], 0, -1))
            winner = probabilities.argmax(axis=-1).astype(np.uint16)
            label_map = geometry.to_original_map(winner, nearest=True)
            confidence = geometry.to_original_map(probabilities.max(axis=-1), nearest=True)
            labels, scores, masks = masks_from_label_map(label_map, confidence, n_classes, allowed)
        else:
            labels, scores, masks = _thresholded(sigmoid(logits[i]), geometry, settings["threshold"], allowed)
            if card.decoder.unclip_ratio:
                masks = np.stack([unclip(m, card.decoder.unclip_ratio) for m in masks]) if len(masks) else masks
        predictions.append(
            Prediction(
                task=Task.SEGMENTATION,
                size=geometry.original_size,
                class_names=card.class_names,
                labels=labels,
                scores=scores,
                masks=masks,
            )
        )
    return predictions


def _thresholded(
    probabilities: np.ndarray, geometry: Geometry, threshold: float, allowed: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels, scores, masks = [], [], []
    for c, plane in enumerate(probabilities):
        if allowed is not None and not allowed[c]:
            continue
        resampled = geometry.to_original_map(plane)
        mask = resampled >= threshold
        if mask.any():
            labels.append(c)
            scores.append(float(resampled[mask].mean()))
            masks.append(mask)
    if not masks:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, *geometry.original_size), bool)
    return np.array(labels, np.int64), np.array(scores, np.float32), np.stack(masks)


def unclip(mask: np.ndarray, ratio: float) -> np.ndarray:
    """Each 8-connected region of a 2-D mask grown by area * ratio / perimeter pixels, with round corners.

    DBNet segments only the shrunk core of each text line and its authors' post-processing (RapidOCR's, PaddleOCR's)
    offsets every core polygon outwards by that distance (1.5 gives back the whole line); the same rule, applied to
    the pixels rather than to a polygon, so that the mask covers the glyphs. The distance follows each region's
    thickness (area / perimeter is about half of it for a line), so small and large print both grow back whole.
    """
    count, regions, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    grown = mask.copy()
    height, width = mask.shape
    for region in range(1, count):
        x, y, w, h, area = stats[region]
        core = (regions[y : y + h, x : x + w] == region).astype(np.uint8)
        contours, _ = cv2.findContours(core, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        perimeter = max(sum(cv2.arcLength(c, closed=True) for c in contours), 1.0)
        r = round(area * ratio / perimeter)
        if r < 1:
            continue
        y1, x1, y2, x2 = max(y - r, 0), max(x - r, 0), min(y + h + r, height), min(x + w + r, width)
        canvas = np.zeros((y2 - y1, x2 - x1), np.uint8)
        canvas[y - y1 : y - y1 + h, x - x1 : x - x1 + w] = core
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        grown[y1:y2, x1:x2] |= cv2.dilate(canvas, disk).astype(bool)
    return grown


def decode_volume(
    card: ModelCard, output: np.ndarray, size: tuple[int, int, int], settings: dict[str, Any]
) -> Prediction:
    """A 3-D model's (1, C, D', H', W') output to masks over the original (D, H, W) volume."""
    logits = output.reshape(output.shape[-4:]).astype(np.float32)
    allowed = class_mask(card, settings)
    if card.decoder.kind == "argmax":
        probabilities = softmax(np.moveaxis(logits, 0, -1))
        winner = resize_volume(probabilities.argmax(axis=-1).astype(np.uint16), size, nearest=True)
        confidence = resize_volume(probabilities.max(axis=-1), size, nearest=True)
        labels, scores, masks = masks_from_label_map(winner.astype(np.int64), confidence, len(card.classes), allowed)
    else:
        probs = sigmoid(logits)
        keep = [c for c in range(len(card.classes)) if allowed is None or allowed[c]]
        planes = [resize_volume(probs[c], size) for c in keep]
        found = [(c, p >= settings["threshold"], p) for c, p in zip(keep, planes, strict=True)]
        found = [(c, m, p) for c, m, p in found if m.any()]
        labels = np.array([c for c, _, _ in found], np.int64)
        scores = np.array([p[m].mean() for _, m, p in found], np.float32)
        masks = np.stack([m for _, m, _ in found]) if found else np.zeros((0, *size), bool)
    return Prediction(
        task=Task.SEGMENTATION,
        size=size,
        class_names=card.class_names,
        labels=labels,
        scores=scores,
        masks=masks,
    )


def volume_slices(prediction: Prediction) -> list[Prediction]:
    """A volume's segmentation as one 2-D prediction per slice, named `source#z` (for formats that annotate
    images, not volumes): each slice lists the classes present on it, with their scores over the volume."""
    if len(prediction.size) != 3:
        raise ValueError(f"volume_slices takes a (depth, height, width) prediction, not size {prediction.size}")
    masks = prediction.masks if prediction.masks is not None else np.zeros((0, *prediction.size), bool)
    slices = []
    for z in range(prediction.size[0]):
        planes = masks[:, z]
        present = planes.reshape(len(planes), -1).any(axis=1)
        slices.append(
            Prediction(
                task=Task.SEGMENTATION,
                size=prediction.size[1:],
                class_names=prediction.class_names,
                source=f"{prediction.source}#{z}",
                labels=prediction.labels[present],
                scores=prediction.scores[present],
                masks=planes[present],
            )
        )
    return slices
