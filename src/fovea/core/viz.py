"""Drawing predictions over images: boxes with labels, tinted masks, a legend, a top-K panel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from fovea.core.predictions import Prediction, Task

Color = tuple[int, int, int]
MASK_ALPHA = 0.45


def _scale(image: np.ndarray) -> tuple[float, int]:
    """Font scale and line thickness that read well from thumbnails to large photos."""
    side = max(image.shape[:2])
    return max(0.4, side / 1000), max(1, round(side / 400))


def _text(
    canvas: np.ndarray,
    text: str,
    top_left: tuple[int, int],
    color: Color,
    font: float,
    thick: int,
    *,
    above=False,
) -> int:
    """Text on a box filled with `color`, in black or white for contrast; returns the box height.

    `above` puts the text just above `top_left` when there is room (a label over its bounding box).
    """
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
    x, y = top_left
    height = th + base + 2 * thick
    if above and y >= height:
        y -= height
    cv2.rectangle(canvas, (x, y), (x + tw + 2 * thick, y + height), tuple(int(c) for c in color), cv2.FILLED)
    ink = (0, 0, 0) if sum(color) > 382 else (255, 255, 255)
    baseline = (x + thick, y + thick + th)
    cv2.putText(canvas, text, baseline, cv2.FONT_HERSHEY_SIMPLEX, font, ink, thick, cv2.LINE_AA)
    return height


def draw(image: np.ndarray, prediction: Prediction, colors: Sequence[Color], *, legend: bool = True) -> np.ndarray:
    """A copy of an HxWx3 RGB image with `prediction` drawn on it (original-pixel coordinates)."""
    canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    font, thick = _scale(canvas)
    names = prediction.class_names
    if prediction.task is Task.SEGMENTATION and prediction.masks is not None:
        for label, mask in zip(prediction.labels, prediction.masks, strict=True):
            _tint(canvas, mask, colors[int(label)], thick)
    if prediction.task is Task.DETECTION:
        for box, label, score in zip(prediction.boxes, prediction.labels, prediction.scores, strict=True):
            color = tuple(int(c) for c in colors[int(label)])
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            cv2.rectangle(canvas, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), color, thick)
            _text(canvas, f"{names[int(label)]} {score:.2f}", (x1, y1), color, font, thick, above=True)
    if prediction.task in (Task.CLASSIFICATION, Task.MULTILABEL):
        y = 0
        for label, score in zip(prediction.labels[:5], prediction.scores[:5], strict=False):
            y += _text(canvas, f"{names[int(label)]} {score:.1%}", (0, y), colors[int(label)], font, thick) + thick
    if prediction.task is Task.REGRESSION:
        y = 0
        for name, value in prediction.values.items():
            y += _text(canvas, f"{name} = {value:.4g}", (0, y), (40, 40, 40), font, thick) + thick
    if legend and prediction.task in (Task.DETECTION, Task.SEGMENTATION):
        shown = prediction.labels
        if prediction.masks is not None:  # only classes visible in this image (a volume slice may have none)
            shown = [label for label, mask in zip(prediction.labels, prediction.masks, strict=True) if mask.any()]
        _legend(canvas, sorted({int(label) for label in shown}), names, colors, font, thick)
    return canvas


def draw_slice(pixels: np.ndarray, prediction: Prediction, index: int, colors: Sequence[Color]) -> np.ndarray:
    """Slice `index` of a volume prediction drawn over that slice's RGB pixels."""
    if prediction.masks is None or len(prediction.size) != 3:
        raise ValueError("draw_slice needs a 3-D segmentation prediction")
    flat = Prediction(
        task=prediction.task,
        size=prediction.size[1:],
        class_names=prediction.class_names,
        labels=prediction.labels,
        scores=prediction.scores,
        masks=prediction.masks[:, index],
    )
    return draw(pixels, flat, colors)


def _tint(canvas: np.ndarray, mask: np.ndarray, color: Color, thick: int) -> None:
    if not mask.any():
        return
    tint = np.asarray(color, np.float32)
    canvas[mask] = (canvas[mask] * (1 - MASK_ALPHA) + tint * MASK_ALPHA).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(canvas, contours, -1, tuple(int(c) for c in color), max(1, thick // 2))


def _legend(
    canvas: np.ndarray,
    labels: list[int],
    names: Sequence[str],
    colors: Sequence[Color],
    font: float,
    thick: int,
) -> None:
    """Class names in their colours, stacked in the top-right corner."""
    y = 0
    for label in labels:
        (tw, _), _ = cv2.getTextSize(names[label], cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        x = max(0, canvas.shape[1] - tw - 2 * thick - 1)
        y += _text(canvas, names[label], (x, y), tuple(int(c) for c in colors[label]), font, thick) + thick


def save_image(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB image as PNG or JPEG (by suffix)."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"cannot write {path.name}: use .png, .jpg or .jpeg")
    ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot write {path}")
    return path
