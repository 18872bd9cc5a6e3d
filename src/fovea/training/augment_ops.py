"""Custom albumentations transforms for the ECVL augmentations that albumentations lacks or models differently.

See reference/dataset-format-and-augmentations.md §2.4, "Custom" rows. Value-only steps subclass
`ImageOnlyTransform` (so masks pass through untouched); geometric steps subclass `DualTransform` and move the mask
with the same random draw, always with nearest-neighbour so an index map stays an index map. Where albumentations
has the right model but a fixed parameter (GridDistortion's `num_steps`, ElasticTransform's `alpha`/`sigma`), the
library transform is subclassed and the parameter is sampled per call. Randomness comes from the transform's own
`py_random`/`random_generator`, which `A.Compose` seeds.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

# albumentations asks PyPI for a newer version on import, synchronously: not from a self-hosted server.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A
import cv2
import numpy as np

Range = tuple[float, float]


def max_value(dtype: np.dtype) -> float:
    """The "white" of a dtype, as albumentations defines it: 255 for uint8, the type maximum for other ints, 1.0."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def saturate(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """ECVL's saturate_cast: integer data rounds and clips to the type's range; float data is only cast."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype, copy=False)


def _per_chunk(fn: Callable[[np.ndarray], np.ndarray], img: np.ndarray) -> np.ndarray:
    """Apply an OpenCV op; its warps take at most 4 channels, and multi-plane samples can have more."""
    if img.ndim == 3 and img.shape[2] > 4:
        return np.concatenate([_per_chunk(fn, img[:, :, i : i + 4]) for i in range(0, img.shape[2], 4)], axis=2)
    out = fn(np.ascontiguousarray(img))
    return out[:, :, None] if img.ndim == 3 and out.ndim == 2 else out  # OpenCV drops a trailing 1-channel axis


# ---------------------------------------------------------------------------------------------------- geometric


class RotateAbout(A.DualTransform):
    """AugRotate with `center`: clockwise by a sampled angle about (x, y), scaled, same size, zeros outside."""

    def __init__(self, angle: Range, center: tuple[float, float], scale: float, interpolation: int, p: float = 1.0):
        super().__init__(p=p)
        self.angle, self.center, self.scale, self.interpolation = angle, center, scale, interpolation

    def get_params(self) -> dict[str, Any]:
        return {"angle": self.py_random.uniform(*self.angle)}

    def _warp(self, img: np.ndarray, angle: float, interpolation: int) -> np.ndarray:
        height, width = img.shape[:2]
        matrix = cv2.getRotationMatrix2D(self.center, -angle, self.scale)  # OpenCV's positive angle is anticlockwise

        def warp(x: np.ndarray) -> np.ndarray:
            return cv2.warpAffine(x, matrix, (width, height), flags=interpolation, borderMode=cv2.BORDER_CONSTANT)

        return _per_chunk(warp, img)

    def apply(self, img: np.ndarray, angle: float, **params: Any) -> np.ndarray:
        return self._warp(img, angle, self.interpolation)

    def apply_to_mask(self, mask: np.ndarray, angle: float, **params: Any) -> np.ndarray:
        return self._warp(mask, angle, cv2.INTER_NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("angle", "center", "scale", "interpolation")


class ResizeScale(A.DualTransform):
    """AugResizeScale: new size round(w*sx) x round(h*sy) (albumentations' RandomScale truncates instead)."""

    def __init__(self, sx: float, sy: float, interpolation: int, p: float = 1.0):
        super().__init__(p=p)
        self.sx, self.sy, self.interpolation = sx, sy, interpolation

    def _resize(self, img: np.ndarray, interpolation: int) -> np.ndarray:
        height, width = img.shape[:2]
        size = (max(1, math.floor(width * self.sx + 0.5)), max(1, math.floor(height * self.sy + 0.5)))
        return _per_chunk(lambda x: cv2.resize(x, size, interpolation=interpolation), img)

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return self._resize(img, self.interpolation)

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        return self._resize(mask, cv2.INTER_NEAREST)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("sx", "sy", "interpolation")


class CenterSquareCrop(A.DualTransform):
    """AugCenterCrop without `size`: the largest centred square."""

    def __init__(self, p: float = 1.0):
        super().__init__(p=p)

    @staticmethod
    def _crop(img: np.ndarray) -> np.ndarray:
        height, width = img.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return img[top : top + side, left : left + side]

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return self._crop(img)

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        return self._crop(mask)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ()


class GridDistortionSampled(A.GridDistortion):
    """A.GridDistortion whose `num_steps` is drawn from a range per call and truncated (the library fixes it)."""

    def __init__(self, steps: Range, **kwargs: Any):
        super().__init__(num_steps=max(1, int(steps[0])), normalized=False, **kwargs)
        self.steps = steps

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        self.num_steps = max(1, int(self.py_random.uniform(*self.steps)))
        return super().get_params_dependent_on_data(params, data)


class ElasticSampled(A.ElasticTransform):
    """A.ElasticTransform whose `alpha` and `sigma` are drawn from ranges per call (the library fixes them)."""

    def __init__(self, alpha: Range, sigma: Range, **kwargs: Any):
        # The library insists on sigma >= 1 at construction; the sampled value is what is used.
        super().__init__(alpha=alpha[1], sigma=max(1.0, sigma[1]), noise_distribution="uniform", **kwargs)
        self.alpha_range, self.sigma_range = alpha, sigma

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        self.alpha = self.py_random.uniform(*self.alpha_range)
        # OpenCV refuses sigma 0 with an automatic kernel; a tiny sigma gives the same 1-pixel (no-op) smoothing.
        self.sigma = max(self.py_random.uniform(*self.sigma_range), 1e-6)
        return super().get_params_dependent_on_data(params, data)


class OpticalDistortionShifted(A.OpticalDistortion):
    """A.OpticalDistortion (camera model) with ECVL's shifted centre, which albumentations 2 dropped.

    The shift is in pixels and rounded, as in the albumentations transform ECVL was ported from.
    """

    def __init__(self, shift_limit: Range, **kwargs: Any):
        super().__init__(mode="camera", **kwargs)
        self.shift_limit = shift_limit

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        k = self.py_random.uniform(*self.distort_limit)
        dx = round(self.py_random.uniform(*self.shift_limit))
        dy = round(self.py_random.uniform(*self.shift_limit))
        camera = np.array([[width, 0, width / 2 + dx], [0, height, height / 2 + dy], [0, 0, 1]], np.float32)
        distortion = np.array([k, k, 0, 0, 0], np.float32)
        map_x, map_y = cv2.initUndistortRectifyMap(camera, distortion, None, None, (width, height), cv2.CV_32FC1)
        return {"map_x": map_x, "map_y": map_y}


# ------------------------------------------------------------------------------------------------- value-only


class GaussianBlurECVL(A.GaussianBlur):
    """A.GaussianBlur with ECVL's kernel size rule, and sigma 0 as a no-op (the library would divide by zero)."""

    def __init__(self, sigma: Range, p: float = 1.0):
        super().__init__(sigma_limit=sigma, blur_limit=0, p=p)
        self.sigma = sigma

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        sigma = self.py_random.uniform(*self.sigma)
        if sigma <= 0:
            return {"kernel": None}
        size = int(((sigma - 0.8) / 0.3 + 1) / 0.5 + 1)  # inverse of OpenCV's sigma-from-kernel-size rule
        size = max(3, size + 1 if size % 2 == 0 else size)
        x = np.arange(size, dtype=np.float64) - size // 2
        kernel = np.exp(-0.5 * (x / sigma) ** 2)
        return {"kernel": (kernel / kernel.sum()).astype(np.float32)}

    def apply(self, img: np.ndarray, kernel: np.ndarray | None, **params: Any) -> np.ndarray:
        return img if kernel is None else super().apply(img, kernel=kernel, **params)


class BrightnessECVL(A.RandomBrightnessContrast):
    """AugBrightness: adds a sampled beta (pixel units). uint8 goes through the library (saturating); other data
    gets a plain add, since the library would scale beta by the dtype's maximum (1.0 for float)."""

    def __init__(self, beta: Range, p: float = 1.0):
        super().__init__(brightness_limit=(beta[0] / 255, beta[1] / 255), contrast_limit=0, brightness_by_max=True, p=p)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        return {"alpha": 1.0, "beta": self.py_random.uniform(*self.brightness_limit) * 255.0}

    def apply(self, img: np.ndarray, alpha: float, beta: float, **params: Any) -> np.ndarray:
        if img.dtype == np.uint8:
            return super().apply(img, alpha=alpha, beta=beta, **params)
        return saturate(img.astype(np.float64) + beta, img.dtype)


class GammaECVL(A.RandomGamma):
    """AugGammaContrast: out = 255 * (in / 255) ** gamma. The library computes that for uint8 but raises float data
    to gamma directly, which assumes 0-1 data; ECVL's formula holds for every dtype here."""

    def __init__(self, gamma: Range, p: float = 1.0):
        super().__init__(gamma_limit=(gamma[0] * 100, gamma[1] * 100), p=p)

    def apply(self, img: np.ndarray, gamma: float, **params: Any) -> np.ndarray:
        if img.dtype == np.uint8:
            return super().apply(img, gamma=gamma, **params)
        # Negative values have no real power; they clamp to 0 as they would in the 0-255 data this expects.
        return saturate(255.0 * (np.maximum(img.astype(np.float64), 0) / 255.0) ** gamma, img.dtype)


class _Noise(A.ImageOnlyTransform):
    """Adds per-element noise drawn from a distribution whose parameter is sampled from a range per call."""

    def __init__(self, scale: Range, p: float = 1.0):
        super().__init__(p=p)
        self.scale = scale

    def draw(self, value: float, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        value = self.py_random.uniform(*self.scale)
        shape = data["image"].shape
        return {"noise": self.draw(value, shape) if value > 0 else None}  # 0 is a no-op (ECVL rejected it)

    def apply(self, img: np.ndarray, noise: np.ndarray | None, **params: Any) -> np.ndarray:
        return img if noise is None else saturate(img.astype(np.float64) + noise, img.dtype)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale",)


class LaplaceNoise(_Noise):
    """AugAdditiveLaplaceNoise: Laplace(0, b) per element, b in pixel units."""

    def draw(self, value: float, shape: tuple[int, ...]) -> np.ndarray:
        return self.random_generator.laplace(0.0, value, shape)


class PoissonNoise(_Noise):
    """AugAdditivePoissonNoise: a Poisson(lambda) integer (>= 0) per element."""

    def draw(self, value: float, shape: tuple[int, ...]) -> np.ndarray:
        return self.random_generator.poisson(value, shape).astype(np.float64)


class GridDropout(A.ImageOnlyTransform):
    """AugCoarseDropout: tile the image with drop_size*w x drop_size*h rectangles, zero each with probability p.

    With probability `per_channel` each channel decides for itself, with probability p / channels.
    """

    def __init__(self, prob: Range, size: Range, per_channel: float, p: float = 1.0):
        super().__init__(p=p)
        self.prob, self.size, self.per_channel = prob, size, per_channel

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        image = data["image"]
        height, width = image.shape[:2]
        channels = image.shape[2] if image.ndim == 3 else 1
        prob, size = self.py_random.uniform(*self.prob), self.py_random.uniform(*self.size)
        rect_w, rect_h = max(1, int(size * width)), max(1, int(size * height))
        tiles = (math.ceil(height / rect_h), math.ceil(width / rect_w))
        if self.py_random.random() < self.per_channel:
            drop = self.random_generator.random((*tiles, channels)) < prob / channels
        else:
            drop = self.random_generator.random((*tiles, 1)) < prob
        drop = np.repeat(np.repeat(drop, rect_h, axis=0), rect_w, axis=1)[:height, :width]
        return {"drop": drop}

    def apply(self, img: np.ndarray, drop: np.ndarray, **params: Any) -> np.ndarray:
        if img.ndim == 2:
            drop = drop[:, :, 0]
        return np.where(drop, np.zeros((), img.dtype), img)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("prob", "size", "per_channel")


class SaltPepper(A.ImageOnlyTransform):
    """AugSalt / AugPepper / AugSaltAndPepper: each pixel is hit with probability p (sampled per call); a hit pixel
    becomes white (the dtype's maximum) with probability `salt`, else black. With probability `per_channel`
    channels are hit separately."""

    def __init__(self, prob: Range, per_channel: float, salt: float, p: float = 1.0):
        super().__init__(p=p)
        self.prob, self.per_channel, self.salt = prob, per_channel, salt

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        image = data["image"]
        channels = image.shape[2] if image.ndim == 3 and self.py_random.random() < self.per_channel else 1
        shape = (*image.shape[:2], channels)
        hit = self.random_generator.random(shape) < self.py_random.uniform(*self.prob)
        white = self.random_generator.random(shape) < self.salt
        return {"salt": hit & white, "pepper": hit & ~white}

    def apply(self, img: np.ndarray, salt: np.ndarray, pepper: np.ndarray, **params: Any) -> np.ndarray:
        if img.ndim == 2:
            salt, pepper = salt[:, :, 0], pepper[:, :, 0]
        out = np.where(pepper, np.zeros((), img.dtype), img)
        return np.where(salt, np.array(max_value(img.dtype), img.dtype), out)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("prob", "per_channel", "salt")


class ToFloatECVL(A.ToFloat):
    """AugToFloat32 / AugDivBy255: float32, divided by `divisor`. The library leaves float input undivided."""

    def __init__(self, divisor: float, p: float = 1.0):
        super().__init__(max_value=divisor, p=p)
        self.divisor = divisor

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return np.asarray(img, np.float32) / np.float32(self.divisor)


class ScaleFromTo(A.ImageOnlyTransform):
    """AugScaleFromTo (and AugScaleTo when `old` is None: the image's own min and max): clamp, map linearly."""

    def __init__(self, old: Range | None, new: Range, p: float = 1.0):
        super().__init__(p=p)
        self.old, self.new = old, new

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        x = img.astype(np.float32)
        lo, hi = self.old if self.old is not None else (float(x.min()), float(x.max()))
        if hi <= lo:  # a constant image (AugScaleTo) has no range to map: it becomes new_min
            return np.full_like(x, self.new[0])
        x = np.clip(x, lo, hi)
        return ((x - lo) * ((self.new[1] - self.new[0]) / (hi - lo)) + self.new[0]).astype(np.float32)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("old", "new")
