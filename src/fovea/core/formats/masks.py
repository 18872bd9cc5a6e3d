"""Mask encodings shared by the formatters: COCO RLE, outer contours, Supervisely bitmaps."""

from __future__ import annotations

import base64
import zlib

import cv2
import numpy as np


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) of the set pixels of a 2-D mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def rle_encode(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE: run lengths over the column-major pixels, starting with a 0-run."""
    h, w = mask.shape
    flat = np.asarray(mask, bool).ravel(order="F")
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [h, w], "counts": counts}


def rle_decode(rle: dict) -> np.ndarray:
    h, w = rle["size"]
    values = np.zeros(len(rle["counts"]), bool)
    values[1::2] = True
    flat = np.repeat(values, rle["counts"])
    return flat.reshape((w, h)).T.copy()


def outer_contours(mask: np.ndarray) -> list[list[int]]:
    """Every outer contour of a 2-D mask as a flat [x1, y1, x2, y2, ...] int list (holes are not kept)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(int).tolist() for c in contours]


def encode_bitmap(mask: np.ndarray) -> tuple[str, list[int]]:
    """Supervisely bitmap: base64(zlib(PNG of the mask cropped to its box))) and the box origin [x, y]."""
    box = bbox(mask)
    if box is None:
        raise ValueError("an empty mask has no bitmap")
    x, y, w, h = box
    crop = np.asarray(mask[y : y + h, x : x + w], np.uint8) * 255
    ok, png = cv2.imencode(".png", crop)
    if not ok:  # pragma: no cover - OpenCV encodes any 8-bit array
        raise ValueError("PNG encoding failed")
    return base64.b64encode(zlib.compress(png.tobytes())).decode("ascii"), [x, y]


def decode_bitmap(data: str, origin: list[int], size: tuple[int, int]) -> np.ndarray:
    """The full-size bool mask of a Supervisely bitmap (the inverse of `encode_bitmap`)."""
    png = zlib.decompress(base64.b64decode(data))
    crop = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if crop.ndim == 3:  # palette PNGs with transparency decode to BGRA: alpha marks the set pixels
        crop = crop[:, :, 3]
    mask = np.zeros(size, bool)
    x, y = origin
    h, w = crop.shape
    mask[y : y + h, x : x + w] = crop > 0
    return mask
