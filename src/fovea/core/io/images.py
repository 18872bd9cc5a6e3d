"""2-D image decoding: JPEG with libjpeg-turbo (simplejpeg, which releases the GIL), the rest with Pillow.

Every path reads the size and sample layout from the header and checks them against `Limits` (pixels, and
decoded bytes: width x height x samples x item size) before a pixel is decoded, so a decompression bomb
costs one header parse. Pillow-decoded arrays may be read-only views: copy before
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
from fovea.core.io.limits import DEFAULT_LIMITS, Limits, check_bytes, check_decoded, label
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
_ORIENTATION_TAG = 0x0112
_TRANSPOSING = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
_UPRIGHT = {  # EXIF orientation -> how stored (row, column, ...) pixels turn upright, as Pillow's exif_transpose
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
# What a hostile or broken file makes Pillow and tifffile raise while parsing.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError)


def decode_image(
    data: bytes, *, name: str = "", limits: Limits = DEFAULT_LIMITS, min_size: tuple[int, int] | None = None
) -> Image:
    """Decode an encoded 2-D image (PNG, JPEG, BMP, GIF, TIFF, WebP; first frame or page) to RGB.

    `min_size=(h, w)` lets a JPEG decode at a reduced DCT scale (libjpeg-turbo's eighths: 7/8 down to 1/8),
    the smallest that stays at least that large; other formats ignore it. `Image.original_size` is the
    file's own size either way, upright (after its EXIF orientation).
    """
    check_bytes(data, name, limits)
    kind = _raster_kind(data, name)
    if kind == "jpeg":
        return _decode_jpeg(data, name, limits, _min_hw(min_size))
    if _pillow_cannot(data, kind):
        return image_from_array(_tifffile_pages(data, name, limits, first_only=True)[0], name)
    with _open(data, kind, name, limits) as pil:
        return Image(_upright(_rgb(pil, name), _orientation(pil)), name=name)


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
            check_decoded(frame.width, frame.height, f"{label(name)} frame {index}", limits, **_layout(frame))
            total += frame.width * frame.height
            if total > limits.max_voxels:
                raise LimitExceeded(f"{label(name)}: its frames hold more than {limits.max_voxels} pixels together")
            frames.append(Image(_upright(_rgb(frame, name), _orientation(frame)), name=f"{name}#{index}"))
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
    check_decoded(width, height, name, limits, samples=4 if colorspace in ("CMYK", "YCCK") else 3)
    orientation = _jpeg_orientation(data)
    if orientation in _TRANSPOSING:  # the stored image is sideways: its sizes are the upright ones swapped
        height, width = width, height
        min_hw = min_hw[::-1]
    min_h, min_w = min_hw  # as stored
    if colorspace not in ("CMYK", "YCCK"):  # libjpeg-turbo cannot turn these into RGB; Pillow can
        try:
            pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=min_h, min_width=min_w)
            return Image(_upright(pixels, orientation), name=name, original_size=(height, width))
        except ValueError:
            # strict libjpeg-turbo also refuses files with recoverable damage (extraneous bytes, a missing
            # marker) that Pillow decodes; a truly corrupt file fails there too, with Pillow's message.
            pass
    with _open(data, "jpeg", name, limits) as pil:
        if min_h or min_w:
            pil.draft("RGB", (max(min_w, 1), max(min_h, 1)))  # the same DCT-domain downscale, in Pillow
        return Image(_upright(_rgb(pil, name), orientation), name=name, original_size=(height, width))


def _jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation of a JPEG (1 without one), read with Pillow only when an Exif segment is there."""
    if b"Exif\x00\x00" not in data[:65536]:  # APP1 comes right after SOI; most files have none to parse
        return 1
    try:
        with PILImage.open(io.BytesIO(data), formats=["JPEG"]) as pil:  # markers only, no pixels
            return _orientation(pil)
    except (UnidentifiedImageError, PILImage.DecompressionBombError, *_DECODE_ERRORS):
        return 1


def _orientation(pil: PILImage.Image) -> int:
    """The image's EXIF orientation, 1 (as stored) when absent, unreadable or out of range."""
    try:
        value = pil.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        return 1
    return value if value in _UPRIGHT else 1


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    turn = _UPRIGHT.get(orientation)
    return pixels if turn is None else np.ascontiguousarray(turn(pixels))


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
        check_decoded(pil.width, pil.height, name, limits, **_layout(pil))
        yield pil


def _layout(pil: PILImage.Image) -> dict[str, int]:
    """Samples per pixel and bytes per sample as the file declares them (TIFF tags), else as Pillow decodes."""
    tags = getattr(pil, "tag_v2", None)
    if tags is not None:  # Pillow narrows e.g. 16-bit RGBA to 8 bits, but decodes the file's samples first
        bits = tags.get(258) or (8,)
        bits = max(bits) if isinstance(bits, tuple) else int(bits)
        return {"samples": int(tags.get(277) or len(pil.getbands())), "item_size": max(1, -(-bits // 8))}
    item_size = 2 if pil.mode.startswith("I;16") else 4 if pil.mode in ("I", "F") else 1
    return {"samples": len(pil.getbands()), "item_size": item_size}


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
                samples = {"samples": page.samplesperpixel, "item_size": page.dtype.itemsize if page.dtype else 8}
                check_decoded(page.imagewidth, page.imagelength, name, limits, **samples)
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
