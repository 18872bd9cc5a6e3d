"""Colour types a network may take: decoded images (always RGB) converted to them, and back for drawing.

Training (a dataset's `ctype`) and serving (a model card's `input.color`) convert through these same functions, so a
network trained on HSV sees HSV from every request. OpenCV's 8-bit HSV has H in 0..179 (degrees / 2), S and V in
0..255, as ECVL (built on OpenCV) gave; YCbCr is OpenCV's YCrCb with the chroma channels in the order the name says.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Convert = Callable[[np.ndarray], np.ndarray]

_FROM_RGB: dict[str, Convert] = {
    "RGB": lambda rgb: rgb,
    "BGR": lambda rgb: np.ascontiguousarray(rgb[:, :, ::-1]),
    "GRAY": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None],
    "HSV": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV),
    "YCBCR": lambda rgb: np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[:, :, [0, 2, 1]]),
}
_TO_RGB: dict[str, Convert] = {
    "RGB": lambda pixels: pixels,
    "BGR": lambda pixels: np.ascontiguousarray(pixels[:, :, ::-1]),
    "GRAY": lambda pixels: np.repeat(pixels[:, :, :1], 3, axis=2),
    "HSV": lambda pixels: cv2.cvtColor(pixels, cv2.COLOR_HSV2RGB),
    "YCBCR": lambda pixels: cv2.cvtColor(np.ascontiguousarray(pixels[:, :, [0, 2, 1]]), cv2.COLOR_YCrCb2RGB),
}
MODEL_COLOURS = tuple(_FROM_RGB)


def from_rgb(rgb: np.ndarray, colour: str) -> np.ndarray:
    """H x W x 3 uint8 RGB as H x W x C in `colour` (C = 1 for GRAY)."""
    return _FROM_RGB[colour](rgb)


def to_rgb(pixels: np.ndarray, colour: str) -> np.ndarray:
    """H x W (x C) uint8 in `colour` back to H x W x 3 RGB."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return _TO_RGB[colour](pixels)
