"""2-D image decoding: JPEG with libjpeg-turbo (simplejpeg, which releases the GIL), the rest with Pillow.

Every path reads the size from the header and checks it against `Limits` before a pixel is decoded, so a
decompression bomb costs one header parse. Pillow-decoded arrays may be read-only views: copy before
drawing on them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import simplejpeg
from PIL import Image as PILImage
from PIL import ImageSequence, UnidentifiedImageError, features

from fovea.core.io.arrays import image_from_array
from fovea.core.io.limits import DEFAULT_LIMITS, Limits, check_bytes, check_pixels, label
from fovea.core.io.media import Image
from fovea.core.io.sniff import RASTER_KINDS, sniff
from fovea.errors import InputError, LimitExceeded

# Pillow's own bomb guard is a process-wide ceiling behind our per-call check: Pillow refuses outright above
# twice this, and we refuse anything above it (where Pillow only warns), whatever the caller's limits say.
# An operator who raises `Limits.max_pixels` past the default must raise this too.
PILImage.MAX_IMAGE_PIXELS = DEFAULT_LIMITS.max_pixels

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP", "gif": "GIF", "tiff": "TIFF", "webp": "WEBP"}
_KIND_NAMES = {"dicom": "DICOM", "nifti": "NIfTI"}
# Pillow modes that hold at most 8 bits per channel and convert to RGB as they are; the others
# (I;16*, I, F) are deeper and go through `image_from_array`'s range scaling instead of being clipped.
_EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
# What a hostile or broken file makes Pillow and tifffile raise while parsing.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError)


def decode_image(
    data: bytes, *, name: str = "", limits: Limits = DEFAULT_LIMITS, min_size: tuple[int, int] | None = None
) -> Image:
    """Decode an encoded 2-D image (PNG, JPEG, BMP, GIF, TIFF, WebP; first frame or page) to RGB.

    `min_size=(h, w)` lets a JPEG decode at a reduced DCT scale (libjpeg-turbo's eighths: 7/8 down to 1/8),
    the smallest that stays at least that large; other formats ignore it. `Image.original_size` is the
    file's own size either way.
    """
    check_bytes(data, name, limits)
    kind = _raster_kind(data, name)
    if kind == "jpeg":
        return _decode_jpeg(data, name, limits, _min_hw(min_size))
    if _pillow_cannot(data, kind):
        return image_from_array(_tifffile_pages(data, name, limits, first_only=True)[0], name)
    with _open(data, kind, name, limits) as pil:
        return Image(_rgb(pil, name), name=name)


def decode_frames(data: bytes, *, name: str = "", limits: Limits = DEFAULT_LIMITS) -> list[Image]:
    """Every page of a multi-page TIFF or frame of an animated GIF/WebP (one image for single-frame files).

    Frames are named `name#index`. At most `max_frames` frames, each within `max_pixels` and all of them
    together within `max_voxels`.
    """
    check_bytes(data, name, limits)
    kind = _raster_kind(data, name)
    if _pillow_cannot(data, kind):
        pages = _tifffile_pages(data, name, limits, first_only=False)
        return [image_from_array(page, f"{name}#{i}") for i, page in enumerate(pages)]
    frames: list[Image] = []
    total = 0
    with _open(data, kind, name, limits) as pil:
        for index, frame in enumerate(ImageSequence.Iterator(pil)):
            if index >= limits.max_frames:
                raise LimitExceeded(f"{label(name)} has more than {limits.max_frames} frames")
            check_pixels(frame.width, frame.height, f"{label(name)} frame {index}", limits)
            total += frame.width * frame.height
            if total > limits.max_voxels:
                raise LimitExceeded(f"{label(name)}: its frames hold more than {limits.max_voxels} pixels together")
            frames.append(Image(_rgb(frame, name), name=f"{name}#{index}"))
    return frames


def _raster_kind(data: bytes, name: str) -> str:
    kind = sniff(data, name)
    if kind in RASTER_KINDS:
        if kind == "webp" and not features.check("webp"):
            raise InputError(f"{label(name)}: WebP is not supported by this Pillow build")
        return kind
    if kind == "unknown":
        raise InputError(f"{label(name)}: unrecognised image format (expected PNG, JPEG, BMP, GIF, TIFF or WebP)")
    raise InputError(f"{label(name)} is a {_KIND_NAMES.get(kind, kind)} file, not a 2-D raster image")


def _min_hw(min_size: tuple[int, int] | None) -> tuple[int, int]:
    if min_size is None:
        return 0, 0
    if len(min_size) != 2 or min(min_size) < 0:
        raise ValueError(f"min_size is (height, width) >= 0, got {min_size!r}")
    return int(min_size[0]), int(min_size[1])


def _decode_jpeg(data: bytes, name: str, limits: Limits, min_hw: tuple[int, int]) -> Image:
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise InputError(f"{label(name)}: corrupt JPEG ({exc})") from None
    check_pixels(width, height, name, limits)
    min_h, min_w = min_hw
    if colorspace not in ("CMYK", "YCCK"):  # libjpeg-turbo cannot turn these into RGB; Pillow can
        try:
            pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=min_h, min_width=min_w)
            return Image(pixels, name=name, original_size=(height, width))
        except ValueError:
            # strict libjpeg-turbo also refuses files with recoverable damage (extraneous bytes, a missing
            # marker) that Pillow decodes; a truly corrupt file fails there too, with Pillow's message.
            pass
    with _open(data, "jpeg", name, limits) as pil:
        if min_h or min_w:
            pil.draft("RGB", (max(min_w, 1), max(min_h, 1)))  # the same DCT-domain downscale, in Pillow
        return Image(_rgb(pil, name), name=name, original_size=(height, width))


@contextmanager
def _open(data: bytes, kind: str, name: str, limits: Limits) -> Iterator[PILImage.Image]:
    """Pillow's lazy open (header only), restricted to the sniffed format, with our size check and errors."""
    try:
        # `formats` keeps Pillow from trying any other plugin on bytes that merely start like this format.
        pil = PILImage.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind]])
    except PILImage.DecompressionBombError:
        raise _over_pillow_guard(name) from None
    except UnidentifiedImageError:
        raise InputError(f"{label(name)}: corrupt or truncated {kind.upper()} header") from None
    except _DECODE_ERRORS as exc:
        raise InputError(f"{label(name)}: corrupt or unsupported {kind.upper()} ({exc})") from None
    with pil:
        guard = PILImage.MAX_IMAGE_PIXELS
        if guard is not None and pil.width * pil.height > guard:
            raise _over_pillow_guard(name)  # Pillow only warned: refuse like it does above twice the guard
        check_pixels(pil.width, pil.height, name, limits)
        yield pil


def _over_pillow_guard(name: str) -> LimitExceeded:
    return LimitExceeded(
        f"{label(name)} is over Pillow's decompression-bomb limit of {PILImage.MAX_IMAGE_PIXELS} pixels"
    )


def _rgb(pil: PILImage.Image, name: str) -> np.ndarray:
    """Decode the current frame to HxWx3 uint8 RGB; deeper than 8-bit data is range-scaled, not clipped."""
    try:
        pil.load()
        if pil.mode == "RGB":
            return np.asarray(pil)
        if pil.mode in _EIGHT_BIT_MODES:
            return np.asarray(pil.convert("RGB"))
        return image_from_array(np.asarray(pil), name).pixels
    except _DECODE_ERRORS as exc:
        raise InputError(f"{label(name)}: corrupt or truncated image ({exc})") from None


def _pillow_cannot(data: bytes, kind: str) -> bool:
    """True for a TIFF that Pillow cannot open (float RGB, float64 ...) but tifffile may."""
    if kind != "tiff":
        return False
    try:
        PILImage.open(io.BytesIO(data), formats=["TIFF"]).close()
    except UnidentifiedImageError:
        return True
    except Exception:  # anything else is reported by the Pillow path, with our message
        return False
    return False


def _tifffile_pages(data: bytes, name: str, limits: Limits, *, first_only: bool) -> list[np.ndarray]:
    """Pages of a TIFF as arrays (HxW or HxWxS), sizes checked before each page is read."""
    import tifffile

    pages: list[np.ndarray] = []
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            total = 0
            for index, page in enumerate(tif.pages):
                if index >= limits.max_frames:
                    raise LimitExceeded(f"{label(name)} has more than {limits.max_frames} pages")
                check_pixels(page.imagewidth, page.imagelength, name, limits)
                total += page.imagewidth * page.imagelength
                if total > limits.max_voxels:
                    raise LimitExceeded(f"{label(name)}: its pages hold more than {limits.max_voxels} pixels together")
                array = page.asarray()
                if page.axes.startswith("S"):  # planar (separate) samples: SYX -> YXS
                    array = np.moveaxis(array, 0, -1)
                pages.append(array)
                if first_only:
                    break
    except (tifffile.TiffFileError, *_DECODE_ERRORS) as exc:
        raise InputError(f"{label(name)}: corrupt or unsupported TIFF ({exc})") from None
    if not pages:
        raise InputError(f"{label(name)}: TIFF without pages")
    return pages
