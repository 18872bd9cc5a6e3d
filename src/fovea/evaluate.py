"""`fovea evaluate`: a model over a labelled dataset split, scored with `fovea.core.metrics`, plus the report files.

The dataset is a DeepHealth YAML (classification, multi-label, segmentation, regression). That format holds no boxes,
so detection is evaluated against COCO annotations instead (an `instances.json` whose `file_name`s are relative to
it). The report is `metrics.json`, and a picture: the confusion matrix (classification) or the precision-recall
curves at IoU 0.5 (detection).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fovea.core.io import Image, read_input
from fovea.core.metrics import Confusion, DetectionAP, MultilabelScores, RegressionErrors, SegmentationScores
from fovea.core.onnx_model import OnnxModel
from fovea.core.predictions import Prediction, Task
from fovea.datasets import DatasetSpec, load_dataset_yaml
from fovea.datasets.files import dataset_file
from fovea.errors import InputError
from fovea.paths import atomic_path

Progress = Callable[[int], None]


@dataclass
class Evaluation:
    task: Task
    model: str
    dataset: str
    split: str
    metrics: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "split": self.split, "task": str(self.task),
                "metrics": self.metrics}  # fmt: skip


def evaluate(
    model: OnnxModel,
    dataset: Path,
    split: str = "test",
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
    total: Callable[[int], None] | None = None,
) -> Evaluation:
    """Score `model` on `split` of `dataset`. `total(n)` is told the image count before the work starts."""
    if dataset.suffix.lower() == ".json":
        return _evaluate_coco(model, dataset, batch_size, progress, total)
    if model.task is Task.DETECTION:
        raise InputError("DeepHealth datasets hold no boxes: evaluate a detector on COCO annotations (instances.json)")
    spec = load_dataset_yaml(dataset, segmentation=model.task is Task.SEGMENTATION)
    ids = spec.ids(split)
    if not ids:
        raise InputError(f"{dataset.name} has no images in its {split!r} split")
    unlabelled = [i for i in ids if not labelled(spec, i, model.task)]
    if unlabelled:
        raise InputError(f"images[{unlabelled[0]}] of the {split} split has no label: nothing to score it against")
    root = dataset.parent
    paths = [dataset_file(root, _first(spec.samples[i].location), f"images[{i}]") for i in ids]
    if total:
        total(len(paths))
    predictions = model.predict_batch(paths, batch_size=batch_size, progress=progress)
    scorer = scorer_for(model, spec)
    for image_id, prediction in zip(ids, predictions, strict=True):
        scorer(spec, image_id, prediction, root)
    return Evaluation(model.task, model.path.name, dataset.name, split, scorer.meter.result())


def _first(location: str | list[str]) -> str:
    return location[0] if isinstance(location, list) else location


def labelled(spec: DatasetSpec, image_id: int, task: Task) -> bool:
    sample = spec.samples[image_id]
    if task is Task.REGRESSION:
        return all(sample.values.get(f) is not None for f in spec.features)
    return sample.label is not None


class Scorer:
    """Scores one prediction against its sample's label into `meter` (a fovea.core.metrics accumulator)."""

    meter: Any

    def __call__(self, spec: DatasetSpec, image_id: int, prediction: Prediction, root: Path) -> None:
        raise NotImplementedError


def class_mapping(dataset_classes: list[str], model_classes: tuple[str, ...]) -> np.ndarray:
    """Dataset class index -> model class index: by name when the model knows every dataset class, else by position."""
    if dataset_classes and all(name in model_classes for name in dataset_classes):
        return np.array([model_classes.index(name) for name in dataset_classes], np.int64)
    if len(dataset_classes) != len(model_classes):
        raise InputError(
            f"the dataset's {len(dataset_classes)} classes do not match the model's {len(model_classes)} "
            f"({', '.join(model_classes[:10])}...)"
        )
    return np.arange(len(model_classes))


def scorer_for(model: OnnxModel, spec: DatasetSpec) -> Scorer:
    names = model.card.class_names
    task = model.task
    if task is Task.CLASSIFICATION:
        return _Single(Confusion(names), class_mapping(spec.classes, names))
    if task is Task.MULTILABEL:
        return _Multi(MultilabelScores(names), class_mapping(spec.classes, names))
    if task is Task.SEGMENTATION:
        return _Masks(names, len(spec.classes) <= 1)
    if task is Task.REGRESSION:
        missing = [f for f in spec.features if f not in model.card.regressions]
        if missing:
            predicted = list(model.card.regressions)
            raise InputError(f"the model predicts {predicted}, not the dataset's feature {missing[0]}")
        return _Values(RegressionErrors(spec.features))
    raise InputError(f"no evaluation for {task} models")


class _Single(Scorer):
    def __init__(self, meter: Confusion, mapping: np.ndarray) -> None:
        self.meter, self.mapping = meter, mapping

    def __call__(self, spec: DatasetSpec, image_id: int, prediction: Prediction, root: Path) -> None:
        label = spec.samples[image_id].label
        label = label[0] if isinstance(label, list) else label
        self.meter.update([self.mapping[int(label)]], [int(prediction.labels[0])])


class _Multi(Scorer):
    def __init__(self, meter: MultilabelScores, mapping: np.ndarray) -> None:
        self.meter, self.mapping = meter, mapping

    def __call__(self, spec: DatasetSpec, image_id: int, prediction: Prediction, root: Path) -> None:
        label = spec.samples[image_id].label
        truth = np.zeros(len(self.meter.class_names), bool)
        truth[self.mapping[[int(i) for i in (label if isinstance(label, list) else [label])]]] = True
        found = np.zeros_like(truth)
        found[prediction.labels.astype(np.int64)] = True
        self.meter.update(truth[None], found[None])


class _Masks(Scorer):
    """Masks as label maps: 0/1 for a binary dataset (any non-zero pixel is foreground), else class indices."""

    def __init__(self, model_classes: tuple[str, ...], binary: bool) -> None:
        self.binary = binary
        names = ["background", model_classes[-1] if model_classes else "foreground"] if binary else model_classes
        self.meter = SegmentationScores(list(names))

    def __call__(self, spec: DatasetSpec, image_id: int, prediction: Prediction, root: Path) -> None:
        where = f"images[{image_id}].label"
        item = read_input(dataset_file(root, str(spec.samples[image_id].label), where))
        truth = np.asarray(item.pixels[:, :, 0] if isinstance(item, Image) else item.voxels)  # a volume's mask
        if truth.shape != tuple(prediction.size):
            raise InputError(f"{where}: the mask is {truth.shape}, its image {prediction.size}")
        self.meter.update(truth > 0 if self.binary else truth, label_map(prediction, self.binary))


def label_map(prediction: Prediction, binary: bool) -> np.ndarray:
    """A segmentation prediction as one label map: 0/1 (binary) or the class index per pixel."""
    out = np.zeros(prediction.size, np.int64)
    for label, mask in zip(prediction.labels, prediction.masks if prediction.masks is not None else [], strict=True):
        out[mask] = 1 if binary else int(label)
    return out


class _Values(Scorer):
    def __init__(self, meter: RegressionErrors) -> None:
        self.meter = meter

    def __call__(self, spec: DatasetSpec, image_id: int, prediction: Prediction, root: Path) -> None:
        values = spec.samples[image_id].values
        self.meter.update([[float(values[f]) for f in spec.features]], [[prediction.values[f] for f in spec.features]])


# -- detection on COCO annotations ------------------------------------------------------------------------


def _evaluate_coco(
    model: OnnxModel, path: Path, batch_size: int, progress: Progress | None, total: Callable[[int], None] | None
) -> Evaluation:
    if model.task is not Task.DETECTION:
        raise InputError("COCO annotations evaluate detectors; give this model a DeepHealth dataset YAML")
    try:
        coco = json.loads(path.read_text())
        images = sorted(coco["images"], key=lambda image: image["id"])
        categories = {c["id"]: c["name"] for c in coco["categories"]}
        annotations = [a for a in coco.get("annotations", []) if not a.get("iscrowd")]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path.name} is not COCO instances JSON: {exc}") from None
    names = model.card.class_names
    unknown = sorted(set(categories.values()) - set(names))
    if unknown:
        raise InputError(f"COCO categories {unknown[:5]} are not classes of the model")
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for annotation in annotations:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    paths = [dataset_file(path.parent, image["file_name"], f"images[{i}]") for i, image in enumerate(images)]
    if total:
        total(len(paths))
    predictions = model.predict_batch(paths, batch_size=batch_size, progress=progress)
    meter = DetectionAP(names)
    for image, prediction in zip(images, predictions, strict=True):
        truth = by_image.get(image["id"], [])
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in truth)], np.float64)
        labels = np.array([names.index(categories[a["category_id"]]) for a in truth], np.int64)
        meter.update(boxes.reshape(-1, 4), labels, prediction.boxes, prediction.scores, prediction.labels)
    return Evaluation(Task.DETECTION, model.path.name, path.name, "all", meter.result())


# -- report files -----------------------------------------------------------------------------------------

HEADLINE = {
    Task.CLASSIFICATION: ("accuracy", "macro_precision", "macro_recall", "macro_f1"),
    Task.MULTILABEL: ("exact_match_accuracy", "micro_f1", "macro_f1"),
    Task.SEGMENTATION: ("dice", "iou", "mean_image_dice", "pixel_accuracy"),
    Task.REGRESSION: ("mae", "rmse", "mean_relative_error"),
    Task.DETECTION: ("map50", "map50_95"),
}


def headline(evaluation: Evaluation) -> list[tuple[str, float]]:
    return [(key, evaluation.metrics[key]) for key in HEADLINE[evaluation.task]]


def write_report(evaluation: Evaluation, out: Path) -> list[Path]:
    """metrics.json, plus confusion_matrix.png or pr_curve.png; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "metrics.json"]
    with atomic_path(written[0]) as tmp:
        tmp.write_text(json.dumps(evaluation.to_json(), indent=2) + "\n")
    picture = None
    if evaluation.task is Task.CLASSIFICATION:
        names = [row["class"] for row in evaluation.metrics["per_class"]]
        picture = ("confusion_matrix.png", draw_confusion(np.array(evaluation.metrics["confusion_matrix"]), names))
    elif evaluation.task is Task.DETECTION:
        curves = {row["class"]: row["pr_curve"] for row in evaluation.metrics["per_class"] if "pr_curve" in row}
        picture = ("pr_curve.png", draw_pr_curves(curves))
    if picture is not None:
        written.append(out / picture[0])
        ok, png = cv2.imencode(".png", picture[1])
        if not ok:
            raise OSError(f"cannot encode {written[-1].name}")
        with atomic_path(written[-1]) as tmp:
            tmp.write_bytes(png.tobytes())
    return written


FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (40, 40, 40)


def draw_confusion(matrix: np.ndarray, names: list[str], cell: int = 44) -> np.ndarray:
    """The confusion matrix as a BGR picture: rows true, columns predicted, shaded by each row's share."""
    n = len(names)
    label_w = max(60, 12 + max((cv2.getTextSize(name[:16], FONT, 0.45, 1)[0][0] for name in names), default=0))
    top, left = 70, label_w + 30
    canvas = np.full((top + n * cell + 20, left + n * cell + 20, 3), 255, np.uint8)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    for r in range(n):
        for c in range(n):
            x, y = left + c * cell, top + r * cell
            shade = int(255 - 200 * shares[r, c])
            cv2.rectangle(canvas, (x, y), (x + cell, y + cell), (255, shade, shade), -1)
            cv2.rectangle(canvas, (x, y), (x + cell, y + cell), (200, 200, 200), 1)
            text = str(int(matrix[r, c]))
            (tw, th), _ = cv2.getTextSize(text, FONT, 0.45, 1)
            color = (255, 255, 255) if shares[r, c] > 0.6 else INK
            cv2.putText(canvas, text, (x + (cell - tw) // 2, y + (cell + th) // 2), FONT, 0.45, color, 1, cv2.LINE_AA)
        cv2.putText(canvas, names[r][:16], (8, top + r * cell + cell // 2 + 5), FONT, 0.45, INK, 1, cv2.LINE_AA)
    for c in range(n):
        cv2.putText(canvas, names[c][:4], (left + c * cell + 4, top - 8), FONT, 0.4, INK, 1, cv2.LINE_AA)
    cv2.putText(canvas, "true \\ predicted", (8, 30), FONT, 0.55, INK, 1, cv2.LINE_AA)
    return canvas


def draw_pr_curves(curves: dict[str, list[float]], size: int = 480) -> np.ndarray:
    """Precision (y) against recall (x) at IoU 0.5, one line per class, as a BGR picture."""
    margin = 50
    canvas = np.full((size + 2 * margin, size + 2 * margin + 160, 3), 255, np.uint8)
    cv2.rectangle(canvas, (margin, margin), (margin + size, margin + size), INK, 1)
    for tick in np.linspace(0, 1, 6):
        x, y = margin + int(tick * size), margin + size - int(tick * size)
        cv2.putText(canvas, f"{tick:.1f}", (x - 10, margin + size + 18), FONT, 0.4, INK, 1, cv2.LINE_AA)
        cv2.putText(canvas, f"{tick:.1f}", (margin - 32, y + 4), FONT, 0.4, INK, 1, cv2.LINE_AA)
    cv2.putText(canvas, "recall", (margin + size // 2 - 20, margin + size + 40), FONT, 0.5, INK, 1, cv2.LINE_AA)
    cv2.putText(canvas, "precision (IoU 0.5)", (margin, margin - 15), FONT, 0.5, INK, 1, cv2.LINE_AA)
    recall = np.linspace(0, 1, 101)
    for i, (name, precision) in enumerate(curves.items()):
        hue = int(180 * i / max(len(curves), 1))
        color = tuple(int(v) for v in cv2.cvtColor(np.uint8([[[hue, 200, 200]]]), cv2.COLOR_HSV2BGR)[0, 0])
        points = np.stack([margin + recall * size, margin + size - np.asarray(precision) * size], axis=1)
        cv2.polylines(canvas, [points.round().astype(np.int32)], False, color, 2, cv2.LINE_AA)
        if i < 20:
            where = (margin + size + 12, margin + 14 + 18 * i)
            cv2.putText(canvas, name[:18], where, FONT, 0.45, color, 1, cv2.LINE_AA)
    return canvas


def process_metric(task: Task, meter: Any, metric: str | None) -> float:
    """The number an inference process's Test line reports for its `Metric` setting, as a running value.

    Classification and multi-label: accuracy. Segmentation: pixel accuracy for `accuracy`, else the mean per-image
    dice. Regression: the error the setting names (absolute by default). Detection datasets hold no boxes.
    """
    if task is Task.SEGMENTATION and metric == "accuracy":
        return float(meter.result()["pixel_accuracy"])
    if task is Task.REGRESSION:
        result = meter.result()
        if metric == "mean_squared_error":
            return float(result["rmse"]) ** 2
        if metric == "mean_relative_error":
            return float(result["mean_relative_error"])
        return float(result["mae"])
    return float(meter.summary())
