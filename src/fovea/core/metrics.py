"""Evaluation metrics per task, numpy only: streaming accumulators fed one image (or batch) at a time.

- `Confusion`: single-label classification (accuracy, confusion matrix, per-class precision/recall/F1).
- `MultilabelScores`: multi-label classification (exact-match accuracy, per-class precision/recall/F1).
- `SegmentationScores`: dice and IoU per class, pooled over all pixels of the split, plus the mean per-image dice.
- `RegressionErrors`: MAE and RMSE per output and overall.
- `DetectionAP`: COCO-style average precision (the COCOeval algorithm for bounding boxes, area "all",
  100 detections per image, 101-point interpolation), so mAP@0.5 and mAP@0.5:0.95 match pycocotools.

Each accumulator's `result()` is a JSON-ready dict; `summary()` is its one headline number (what a progress line shows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

COCO_IOUS = np.linspace(0.5, 0.95, 10)  # np.linspace as pycocotools builds them (exact float equality matters)
COCO_RECALLS = np.linspace(0.0, 1.00, 101)
COCO_MAX_DETS = 100


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _per_class(names: Sequence[str], **columns: np.ndarray) -> list[dict[str, Any]]:
    return [
        {"class": name, **{key: float(values[i]) if values.dtype.kind == "f" else int(values[i])
                           for key, values in columns.items()}}
        for i, name in enumerate(names)
    ]  # fmt: skip


# -- classification ---------------------------------------------------------------------------------------


@dataclass
class Confusion:
    """Single-label classification: rows are the true class, columns the predicted one."""

    class_names: Sequence[str]
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = np.zeros((len(self.class_names), len(self.class_names)), np.int64)

    def update(self, true: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray) -> None:
        np.add.at(self.matrix, (np.asarray(true, np.int64), np.asarray(predicted, np.int64)), 1)

    @property
    def count(self) -> int:
        return int(self.matrix.sum())

    @property
    def accuracy(self) -> float:
        return float(_ratio(np.trace(self.matrix), self.matrix.sum()))

    def summary(self) -> float:
        return self.accuracy

    def result(self) -> dict[str, Any]:
        hits = np.diag(self.matrix)
        precision = _ratio(hits, self.matrix.sum(axis=0))
        recall = _ratio(hits, self.matrix.sum(axis=1))
        f1 = _ratio(2 * precision * recall, precision + recall)
        return {
            "images": self.count,
            "accuracy": self.accuracy,
            "macro_precision": float(precision.mean()) if len(hits) else 0.0,
            "macro_recall": float(recall.mean()) if len(hits) else 0.0,
            "macro_f1": float(f1.mean()) if len(hits) else 0.0,
            "per_class": _per_class(
                self.class_names, precision=precision, recall=recall, f1=f1, support=self.matrix.sum(axis=1)
            ),
            "confusion_matrix": self.matrix.tolist(),
        }


@dataclass
class MultilabelScores:
    """Multi-label classification from (N, C) boolean rows of true and predicted classes."""

    class_names: Sequence[str]
    images: int = 0
    exact: int = 0
    true_positive: np.ndarray = field(init=False)
    predicted: np.ndarray = field(init=False)
    actual: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.class_names)
        self.true_positive, self.predicted, self.actual = (np.zeros(n, np.int64) for _ in range(3))

    def update(self, true: np.ndarray, predicted: np.ndarray) -> None:
        true, predicted = np.atleast_2d(np.asarray(true, bool)), np.atleast_2d(np.asarray(predicted, bool))
        self.images += len(true)
        self.exact += int((true == predicted).all(axis=1).sum())
        self.true_positive += (true & predicted).sum(axis=0)
        self.predicted += predicted.sum(axis=0)
        self.actual += true.sum(axis=0)

    @property
    def accuracy(self) -> float:
        """Exact-match (subset) accuracy: every class right."""
        return float(_ratio(self.exact, self.images))

    def summary(self) -> float:
        return self.accuracy

    def result(self) -> dict[str, Any]:
        precision = _ratio(self.true_positive, self.predicted)
        recall = _ratio(self.true_positive, self.actual)
        f1 = _ratio(2 * precision * recall, precision + recall)
        micro_p = _ratio(self.true_positive.sum(), self.predicted.sum())
        micro_r = _ratio(self.true_positive.sum(), self.actual.sum())
        return {
            "images": self.images,
            "exact_match_accuracy": self.accuracy,
            "micro_f1": float(_ratio(2 * micro_p * micro_r, micro_p + micro_r)),
            "macro_f1": float(f1.mean()) if len(f1) else 0.0,
            "per_class": _per_class(self.class_names, precision=precision, recall=recall, f1=f1, support=self.actual),
        }


# -- segmentation -----------------------------------------------------------------------------------------


@dataclass
class SegmentationScores:
    """Dice and IoU per class from label maps (class index per pixel; binary: 0 background, 1 foreground).

    The per-class scores pool every pixel of the split; `mean_dice` is also reported per image (the foreground
    classes' mean dice of each image, averaged), the number a running progress line shows.
    """

    class_names: Sequence[str]  # index 0 is the background for a binary task: ("background", "foreground")
    intersection: np.ndarray = field(init=False)
    predicted: np.ndarray = field(init=False)
    actual: np.ndarray = field(init=False)
    image_dice: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.class_names)
        self.intersection, self.predicted, self.actual = (np.zeros(n, np.int64) for _ in range(3))

    def update(self, true: np.ndarray, predicted: np.ndarray) -> None:
        true, predicted = np.asarray(true, np.int64).ravel(), np.asarray(predicted, np.int64).ravel()
        if true.shape != predicted.shape:
            raise ValueError(f"mask sizes differ: {true.shape} and {predicted.shape}")
        n = len(self.class_names)
        if true.size and (max(true.max(), predicted.max()) >= n or min(true.min(), predicted.min()) < 0):
            raise ValueError(f"mask values must be class indices below {n}")
        inter = np.bincount(true[true == predicted], minlength=n)
        pred = np.bincount(predicted, minlength=n)
        act = np.bincount(true, minlength=n)
        self.intersection += inter
        self.predicted += pred
        self.actual += act
        # An image where a class is absent and not predicted scores 1 for it: nothing was there and nothing found.
        foreground = slice(1, None) if n > 1 else slice(None)
        dice = np.where(pred + act > 0, _ratio(2 * inter, pred + act), 1.0)[foreground]
        self.image_dice.append(float(dice.mean()) if dice.size else 1.0)

    def summary(self) -> float:
        """The mean per-image dice (foreground classes)."""
        return float(np.mean(self.image_dice)) if self.image_dice else 0.0

    def result(self) -> dict[str, Any]:
        dice = _ratio(2 * self.intersection, self.predicted + self.actual)
        iou = _ratio(self.intersection, self.predicted + self.actual - self.intersection)
        foreground = slice(1, None) if len(self.class_names) > 1 else slice(None)
        return {
            "images": len(self.image_dice),
            "dice": float(dice[foreground].mean()) if dice[foreground].size else 0.0,
            "iou": float(iou[foreground].mean()) if iou[foreground].size else 0.0,
            "mean_image_dice": self.summary(),
            "pixel_accuracy": float(_ratio(self.intersection.sum(), self.actual.sum())),
            "per_class": _per_class(self.class_names, dice=dice, iou=iou, pixels=self.actual),
        }


# -- regression -------------------------------------------------------------------------------------------


@dataclass
class RegressionErrors:
    """MAE and RMSE from (N, F) rows of true and predicted values, one column per output."""

    names: Sequence[str]
    count: int = 0
    absolute: np.ndarray = field(init=False)
    squared: np.ndarray = field(init=False)
    relative: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.absolute, self.squared, self.relative = (np.zeros(len(self.names)) for _ in range(3))

    def update(self, true: np.ndarray, predicted: np.ndarray) -> None:
        true = np.asarray(true, np.float64).reshape(-1, len(self.names))
        predicted = np.asarray(predicted, np.float64).reshape(-1, len(self.names))
        error = predicted - true
        self.count += len(true)
        self.absolute += np.abs(error).sum(axis=0)
        self.squared += (error**2).sum(axis=0)
        self.relative += _ratio(np.abs(error), np.abs(true)).sum(axis=0)

    @property
    def mae(self) -> float:
        return float(self.absolute.sum() / (self.count * len(self.names))) if self.count else 0.0

    def summary(self) -> float:
        return self.mae

    def result(self) -> dict[str, Any]:
        n = max(self.count, 1)
        rmse = np.sqrt(self.squared / n)
        return {
            "images": self.count,
            "mae": self.mae,
            "rmse": float(np.sqrt(self.squared.sum() / (n * len(self.names)))) if self.count else 0.0,
            "mean_relative_error": float(self.relative.sum() / (n * len(self.names))) if self.count else 0.0,
            "per_output": [
                {"output": name, "mae": float(self.absolute[i] / n), "rmse": float(rmse[i])}
                for i, name in enumerate(self.names)
            ],
        }


# -- detection --------------------------------------------------------------------------------------------


def box_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU matrix of x1, y1, x2, y2 boxes (len(boxes) x len(others)); areas as COCO computes them (w * h, no +1)."""
    a, b = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(others, np.float64).reshape(-1, 4)
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return _ratio(inter, area_a[:, None] + area_b[None, :] - inter)


@dataclass
class _Matched:
    scores: np.ndarray  # one image's detections of one class, best first, at most COCO_MAX_DETS
    hits: np.ndarray  # (IoU thresholds, detections) bool: matched to a ground-truth box at that threshold
    ground_truths: int


@dataclass
class DetectionAP:
    """COCO bounding-box AP. Feed each image's ground truth and detections (x1, y1, x2, y2 in pixels)."""

    class_names: Sequence[str]
    _images: list[dict[int, _Matched]] = field(default_factory=list)

    def update(
        self,
        true_boxes: np.ndarray,
        true_labels: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray,
    ) -> None:
        true_boxes, true_labels = np.asarray(true_boxes, np.float64).reshape(-1, 4), np.asarray(true_labels, np.int64)
        boxes, scores = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
        labels = np.asarray(labels, np.int64)
        per_class: dict[int, _Matched] = {}
        for k in set(true_labels.tolist()) | set(labels.tolist()):
            gts = true_boxes[true_labels == k]
            order = np.argsort(-scores[labels == k], kind="mergesort")[:COCO_MAX_DETS]
            dets, det_scores = boxes[labels == k][order], scores[labels == k][order]
            per_class[k] = _Matched(det_scores, _match(box_iou(dets, gts)), len(gts))
        self._images.append(per_class)

    def _curve(self, k: int) -> tuple[np.ndarray, int]:
        """Interpolated precision at COCO_RECALLS per IoU threshold (len(COCO_IOUS) x 101) and the GT count."""
        entries = [image[k] for image in self._images if k in image]
        n_gt = sum(e.ground_truths for e in entries)
        precision = np.zeros((len(COCO_IOUS), len(COCO_RECALLS)))
        if not entries or n_gt == 0:
            return precision, n_gt
        scores = np.concatenate([e.scores for e in entries])
        hits = np.concatenate([e.hits for e in entries], axis=1)[:, np.argsort(-scores, kind="mergesort")]
        tp = np.cumsum(hits, axis=1, dtype=np.float64)
        fp = np.cumsum(~hits, axis=1, dtype=np.float64)
        for t in range(len(COCO_IOUS)):
            recall = tp[t] / n_gt
            prec = (tp[t] / (fp[t] + tp[t] + np.spacing(1))).tolist()
            for i in range(len(prec) - 1, 0, -1):  # the precision envelope, as COCOeval.accumulate builds it
                prec[i - 1] = max(prec[i - 1], prec[i])
            where = np.searchsorted(recall, COCO_RECALLS, side="left")
            for r, i in enumerate(where):
                if i < len(prec):
                    precision[t, r] = prec[i]
        return precision, n_gt

    def result(self) -> dict[str, Any]:
        per_class, maps, maps50 = [], [], []
        for k, name in enumerate(self.class_names):
            precision, n_gt = self._curve(k)
            row: dict[str, Any] = {"class": name, "ground_truths": n_gt}
            if n_gt:  # COCO leaves classes without ground truth out of the mean
                row |= {"ap50": float(precision[0].mean()), "ap": float(precision.mean())}
                row["pr_curve"] = [round(float(p), 6) for p in precision[0]]
                maps50.append(row["ap50"])
                maps.append(row["ap"])
            per_class.append(row)
        return {
            "images": len(self._images),
            "map50": float(np.mean(maps50)) if maps50 else 0.0,
            "map50_95": float(np.mean(maps)) if maps else 0.0,
            "recall_points": COCO_RECALLS.tolist(),
            "per_class": per_class,
        }

    def summary(self) -> float:
        return self.result()["map50"]


def _match(ious: np.ndarray) -> np.ndarray:
    """COCOeval.evaluateImg's greedy matching: each detection, best first, takes the unmatched ground-truth box
    it overlaps most, if that IoU reaches the threshold. Returns (thresholds, detections) hits."""
    n_det, n_gt = ious.shape
    hits = np.zeros((len(COCO_IOUS), n_det), bool)
    for t, threshold in enumerate(COCO_IOUS):
        taken = np.zeros(n_gt, bool)
        for d in range(n_det):
            best, match = min(threshold, 1 - 1e-10), -1
            for g in range(n_gt):
                if taken[g] or ious[d, g] < best:
                    continue
                best, match = ious[d, g], g
            if match >= 0:
                taken[match] = True
                hits[t, d] = True
    return hits
