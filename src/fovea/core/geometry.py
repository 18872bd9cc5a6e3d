"""Resize modes and their exact inverses.

Every 2-D resize mode here is an axis-aligned affine map from ORIGINAL pixel coordinates to NETWORK
coordinates, `x_net = x * sx + ox` (continuous coordinates: pixel i spans [i, i + 1)). Keeping that
one form for stretch, letterbox and shorter-side + center-crop means one inverse serves boxes, points
and masks, and a reduced-scale JPEG decode composes into it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fovea.core.card import ResizeMode


@dataclass(frozen=True, slots=True)
class Geometry:
    """How one original image maps onto the network input."""

    original_size: tuple[int, int]  # (height, width) of the original image
    network_size: tuple[int, int]  # (height, width) of the network input
    scale: tuple[float, float]  # (sy, sx): network pixels per original pixel
    offset: tuple[float, float]  # (oy, ox): network position of the original's top-left corner

    def to_network(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) x, y points from original to network coordinates."""
        return points * np.array(self.scale[::-1]) + np.array(self.offset[::-1])

    def to_original_points(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) x, y points from network to original coordinates (not clipped)."""
        return (points - np.array(self.offset[::-1])) / np.array(self.scale[::-1])

    def to_original_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Map (N, 4) x1, y1, x2, y2 boxes from network to original pixels, clipped to the image."""
        sy, sx = self.scale
        oy, ox = self.offset
        h, w = self.original_size
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, 0::2] = np.clip((boxes[:, 0::2] - ox) / sx, 0, w)
        out[:, 1::2] = np.clip((boxes[:, 1::2] - oy) / sy, 0, h)
        return out

    def to_original_map(self, network_map: np.ndarray, *, nearest: bool = False) -> np.ndarray:
        """Resample a network-sized (H, W) or (H, W, C) map onto the original image.

        Original pixels the network never saw (outside a center crop) get 0.
        """
        sy, sx = self.scale
        oy, ox = self.offset
        # Pixel centres sit at i + 0.5: shift the continuous map into OpenCV's index convention.
        forward = np.array([[sx, 0, ox + 0.5 * sx - 0.5], [0, sy, oy + 0.5 * sy - 0.5]], np.float64)
        h, w = self.original_size
        flags = (cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
        return cv2.warpAffine(network_map, forward, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)

    def rescaled(self, factor_y: float, factor_x: float, original_size: tuple[int, int]) -> Geometry:
        """This geometry for an original `factor` times larger (the true size behind a reduced decode)."""
        return Geometry(
            original_size,
            self.network_size,
            (self.scale[0] / factor_y, self.scale[1] / factor_x),
            self.offset,
        )


def _interpolation(src: tuple[int, int], dst: tuple[int, int]) -> int:
    shrinking = dst[0] < src[0] and dst[1] < src[1]
    return cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR


def _resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if pixels.shape[:2] == (h, w):
        return pixels
    return cv2.resize(pixels, (w, h), interpolation=_interpolation(pixels.shape[:2], size))


def resize_image(
    pixels: np.ndarray,
    size: tuple[int, int],
    mode: ResizeMode,
    *,
    crop_pct: float = 0.875,
    pad_value: int = 114,
) -> tuple[np.ndarray, Geometry]:
    """Resize HxWxC `pixels` to the network `size` (height, width) and say how to map results back."""
    h, w = pixels.shape[:2]
    th, tw = size
    if mode == "stretch":
        return _resize(pixels, size), Geometry((h, w), size, (th / h, tw / w), (0.0, 0.0))
    if mode == "letterbox":
        ratio = min(th / h, tw / w)
        nh, nw = max(1, round(h * ratio)), max(1, round(w * ratio))
        top, left = (th - nh) // 2, (tw - nw) // 2
        resized = _resize(pixels, (nh, nw))
        border = (pad_value,) * (pixels.shape[2] if pixels.ndim == 3 else 1)
        padded = cv2.copyMakeBorder(
            resized, top, th - nh - top, left, tw - nw - left, cv2.BORDER_CONSTANT, value=border
        )
        return padded, Geometry((h, w), size, (nh / h, nw / w), (float(top), float(left)))
    if mode == "center_crop":
        # Resize so the crop covers the network input after dividing by crop_pct, then crop the centre.
        # Cropping the original first and resizing once is the same map with less work.
        ratio = max(th / h, tw / w) / crop_pct
        ch, cw = min(h, max(1, round(th / ratio))), min(w, max(1, round(tw / ratio)))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        resized = _resize(pixels[y0 : y0 + ch, x0 : x0 + cw], size)
        sy, sx = th / ch, tw / cw
        return resized, Geometry((h, w), size, (sy, sx), (-y0 * sy, -x0 * sx))
    raise ValueError(f"unknown resize mode {mode!r}")


def resize_volume(voxels: np.ndarray, size: tuple[int, int, int], *, nearest: bool = False) -> np.ndarray:
    """Resize a (D, H, W) array to `size` with (bi)linear or nearest interpolation along every axis."""
    d, _, _ = voxels.shape
    td, th, tw = size
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    planes = np.stack([cv2.resize(voxels[i], (tw, th), interpolation=interp) for i in range(d)])
    if td == d:
        return planes
    # Along depth: sample at pixel centres, like cv2.resize does in-plane.
    pos = np.clip((np.arange(td) + 0.5) * d / td - 0.5, 0, d - 1)
    if nearest:
        return planes[np.round(pos).astype(int)]
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, d - 1)
    frac = (pos - lo).astype(np.float32)[:, None, None]
    return (planes[lo] * (1 - frac) + planes[hi] * frac).astype(voxels.dtype)
