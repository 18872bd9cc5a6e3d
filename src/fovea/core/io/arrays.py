"""Numpy arrays to RGB `Image`s: the one place that decides how deep or odd-shaped pixels become uint8 RGB."""

from __future__ import annotations

import numpy as np

from fovea.core.io.media import Image
from fovea.errors import InputError


def image_from_array(array: np.ndarray, name: str = "") -> Image:
    """An `Image` (HxWx3 uint8 RGB, C-contiguous) from an HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) array.

    uint8 is taken as is (an HxWx3 uint8 C-contiguous array is used without a copy). Any other numeric
    dtype (uint16, int16, float, bool ...) is scaled linearly to 0..255 over the array's own min..max,
    which suits 16-bit and float data of unknown range; a constant array becomes all 0. NaN and inf
    count as 0. Alpha is dropped: the colour channels are kept as stored, not composited.
    """
    array = np.asarray(array)
    label = name or "array"
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) or np.iscomplexobj(array):
        raise InputError(f"{label}: expected real numeric pixels, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] in (1, 4):
        array = array[:, :, 0] if array.shape[2] == 1 else array[:, :, :3]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)) or array.size == 0:
        raise InputError(f"{label}: expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = to_uint8(array)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return Image(np.ascontiguousarray(array), name=name)


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale any real numeric array to uint8 0..255 over its own finite range (a constant array becomes 0)."""
    values = array.astype(np.float32)  # a fresh array: the in-place steps below never touch the caller's
    finite = np.isfinite(values)
    if not finite.all():
        values[~finite] = 0
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(array.shape, np.uint8)
    values -= lo
    values *= 255.0 / (hi - lo)
    np.rint(values, out=values)
    return values.astype(np.uint8)


def window_to_uint8(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Scanner values to uint8 over a fixed (low, high) window: low and below become 0, high and above 255.

    Unlike `to_uint8`, the mapping does not depend on the scan's own range, so one tissue gets one grey level
    on every scan (a CT model's HU window). NaN counts as low.
    """
    low, high = (float(v) for v in window)
    if not high > low:
        raise ValueError(f"a window needs low < high, got ({low}, {high})")
    scaled = (values.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    np.nan_to_num(scaled, copy=False, nan=0.0)
    np.clip(scaled, 0, 255, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8)
