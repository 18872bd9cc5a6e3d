"""Readers: bytes, files, arrays and URLs to `Image`s and `Volume`s, within `Limits`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fovea.core.io.images import decode_frames, decode_image, image_from_array
from fovea.core.io.limits import DEFAULT_LIMITS, Limits
from fovea.core.io.media import Image, Volume
from fovea.core.io.medical import read_dicom, read_dicom_series, read_nifti, write_nifti
from fovea.core.io.sniff import sniff
from fovea.core.io.urls import check_url, fetch_url
from fovea.core.io.video import VideoInfo, iter_frames, probe_video, video_frame_indices
from fovea.errors import InputError, LimitExceeded

__all__ = [
    "DEFAULT_LIMITS",
    "Image",
    "Limits",
    "VideoInfo",
    "Volume",
    "check_url",
    "decode_frames",
    "decode_image",
    "fetch_url",
    "image_from_array",
    "iter_frames",
    "probe_video",
    "read_dicom",
    "read_dicom_series",
    "read_input",
    "read_nifti",
    "sniff",
    "video_frame_indices",
    "write_nifti",
]


def read_input(
    source: bytes | str | Path | np.ndarray,
    *,
    name: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    min_size: tuple[int, int] | None = None,
) -> Image | Volume:
    """Read any supported input: raster images, DICOM and NIfTI, from bytes, a file path or an array."""
    if isinstance(source, np.ndarray):
        return image_from_array(source, name or "")
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        try:
            size = path.stat().st_size
        except OSError:
            raise InputError(f"cannot read {path}: file not found") from None
        if size > limits.max_bytes:
            raise LimitExceeded(f"{name} is {size} bytes, over the limit of {limits.max_bytes}")
        source = path.read_bytes()
    name = name or ""
    kind = sniff(source, name)
    if kind == "dicom":
        return read_dicom(source, name=name, limits=limits)
    if kind == "nifti":
        return read_nifti(source, name=name, limits=limits)
    return decode_image(source, name=name, limits=limits, min_size=min_size)
