"""2-D image decoding: JPEG through libjpeg-turbo (simplejpeg), everything else through Pillow.

Sizes are checked from the header before pixels are allocated, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import simplejpeg
from PIL import Image as PILImage
from PIL import ImageSequence, UnidentifiedImageError

from fovea.core.io.limits import DEFAULT_LIMITS, Limits
from fovea.core.io.media import Image
from fovea.core.io.sniff import sniff
from fovea.errors import InputError, LimitExceeded

# Pillow's own bomb guard stays on as a second line of defence; ours runs first with the caller's limit.
PILImage.MAX_IMAGE_PIXELS = DEFAULT_LIMITS.max_pixels
RASTER_KINDS = {"png", "jpeg", "bmp", "gif", "tiff", "webp"}


def check_bytes(data: bytes, name: str, limits: Limits) -> None:
    if not data:
        raise InputError(f"{name or 'input'} is empty")
    if len(data) > limits.max_bytes:
        raise LimitExceeded(f"{name or 'input'} is {len(data)} bytes, over the limit of {limits.max_bytes}")


def check_pixels(width: int, height: int, name: str, limits: Limits) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{name or 'input'} has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise LimitExceeded(
            f"{name or 'input'} is {width}x{height} pixels, over the limit of {limits.max_pixels} pixels"
        )


def decode_image(
    data: bytes, *, name: str = "", limits: Limits = DEFAULT_LIMITS, min_size: tuple[int, int] | None = None
) -> Image:
    """Decode an encoded 2-D image (first page or frame) to RGB.

    `min_size=(h, w)` lets a JPEG decode at reduced DCT scale while staying at least that large;
    `Image.original_size` keeps the file's own size either way.
    """
    check_bytes(data, name, limits)
    kind = sniff(data, name)
    if kind == "jpeg":
        return _decode_jpeg(data, name, limits, min_size)
    if kind not in RASTER_KINDS:
        raise InputError(f"{name or 'input'}: unsupported or unrecognised image format ({kind})")
    with _open(data, name, limits) as pil:
        return Image(_to_rgb_array(pil, name), name=name)


def decode_frames(data: bytes, *, name: str = "", limits: Limits = DEFAULT_LIMITS) -> list[Image]:
    """Every page of a multi-page TIFF or frame of a GIF (one image for single-frame formats)."""
    check_bytes(data, name, limits)
    if sniff(data, name) not in RASTER_KINDS:
        raise InputError(f"{name or 'input'}: unsupported or unrecognised image format")
    frames = []
    with _open(data, name, limits) as pil:
        for index, frame in enumerate(ImageSequence.Iterator(pil)):
            if index >= limits.max_frames:
                raise LimitExceeded(f"{name or 'input'} has more than {limits.max_frames} frames")
            check_pixels(frame.width, frame.height, name, limits)
            frames.append(Image(_to_rgb_array(frame, name), name=f"{name}#{index}"))
    return frames


def image_from_array(array: np.ndarray, name: str = "") -> Image:
    """An RGB uint8 Image from HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) arrays of any numeric dtype.

    Non-uint8 data (16-bit, float) is scaled to 0..255 over the array's own range; alpha is dropped.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)) or array.size == 0:
        raise InputError(f"{name or 'array'}: expected an HxW, HxWx3 or HxWx4 image, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = to_uint8(array)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return Image(np.ascontiguousarray(array), name=name)


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale any numeric array to 0..255 over its own range (a constant array becomes 0)."""
    values = array.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, 0)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(array.shape, np.uint8)
    return ((values - lo) * (255.0 / (hi - lo))).round().astype(np.uint8)


def _decode_jpeg(data: bytes, name: str, limits: Limits, min_size: tuple[int, int] | None) -> Image:
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise InputError(f"{name or 'input'}: corrupt JPEG ({exc})") from None
    check_pixels(width, height, name, limits)
    try:
        if min_size:
            pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=min_size[0], min_width=min_size[1])
        else:
            pixels = simplejpeg.decode_jpeg(data, colorspace="RGB")
    except ValueError:
        # libjpeg-turbo refuses some valid files (e.g. CMYK, arithmetic coding); Pillow reads them.
        with _open(data, name, limits) as pil:
            return Image(_to_rgb_array(pil, name), name=name)
    return Image(pixels, name=name, original_size=(height, width))


class _open:
    """Pillow open + size check + clear errors, as a context manager."""

    def __init__(self, data: bytes, name: str, limits: Limits) -> None:
        self.data, self.name, self.limits = data, name, limits

    def __enter__(self) -> PILImage.Image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", PILImage.DecompressionBombWarning)
                self.pil = PILImage.open(io.BytesIO(self.data))
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
            raise LimitExceeded(f"{self.name or 'input'} is too many pixels (decompression bomb guard)") from None
        except UnidentifiedImageError:
            raise InputError(f"{self.name or 'input'}: corrupt or truncated image (unreadable header)") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"{self.name or 'input'}: corrupt or unsupported image ({exc})") from None
        check_pixels(self.pil.width, self.pil.height, self.name, self.limits)
        return self.pil

    def __exit__(self, *exc: object) -> None:
        self.pil.close()


def _to_rgb_array(pil: PILImage.Image, name: str) -> np.ndarray:
    """Load pixels and convert to HxWx3 uint8 RGB; 16-bit and float modes are range-scaled, not clipped."""
    try:
        pil.load()
        if pil.mode in ("RGB", "L", "RGBA", "LA", "P", "1", "CMYK", "YCbCr", "LAB", "HSV", "PA", "RGBX"):
            rgb = pil.convert("RGB")
            return np.asarray(rgb)
        return image_from_array(np.asarray(pil), name).pixels  # I;16, I, F: high bit depth
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{name or 'input'}: corrupt or truncated image ({exc})") from None
