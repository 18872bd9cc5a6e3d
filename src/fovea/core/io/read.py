"""One entry point for any supported input: bytes, a file path or an array, sniffed and sent to its reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fovea.core.io.arrays import image_from_array
from fovea.core.io.dicom import read_dicom
from fovea.core.io.images import decode_image
from fovea.core.io.limits import DEFAULT_LIMITS, Limits, check_bytes, read_file
from fovea.core.io.media import Image, Volume
from fovea.core.io.nifti import read_nifti
from fovea.core.io.sniff import sniff


def read_input(
    source: bytes | str | Path | np.ndarray,
    *,
    name: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    min_size: tuple[int, int] | None = None,
    window: tuple[float, float] | None = None,
) -> Image | Volume:
    """Read a raster image, DICOM file or NIfTI volume from bytes, a file path or a numpy array.

    The format comes from the content (magic bytes); the name only settles a DICOM file without its
    preamble (`.dcm`) and a gzipped NIfTI (`.nii.gz`). `name` defaults to the file name of a path.
    A single-frame DICOM gives an `Image`; a multi-frame DICOM and a NIfTI file give a `Volume`.
    `min_size` is passed to `decode_image` (reduced-scale JPEG decoding), `window` to `read_dicom` (the
    scanner values a single grayscale DICOM frame maps onto 0..255).
    """
    if isinstance(source, np.ndarray):
        return image_from_array(source, name or "")
    if isinstance(source, (str, Path)):
        name = name or Path(source).name
        data = read_file(source, limits, name)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), name or ""
        check_bytes(data, name, limits)
    else:
        raise TypeError(f"read_input takes bytes, a path or a numpy array, not {type(source).__name__}")
    kind = sniff(data, name)
    if kind == "dicom":
        return read_dicom(data, name=name, limits=limits, window=window)
    if kind == "nifti":
        return read_nifti(data, name=name, limits=limits)
    return decode_image(data, name=name, limits=limits, min_size=min_size)
