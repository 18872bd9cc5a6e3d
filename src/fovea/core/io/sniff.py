"""Which reader an input needs, from its first bytes (the name only breaks ties the bytes cannot)."""

from __future__ import annotations

import zlib
from typing import Literal

Kind = Literal["png", "jpeg", "bmp", "gif", "tiff", "webp", "dicom", "nifti", "unknown"]
RASTER_KINDS: frozenset[str] = frozenset({"png", "jpeg", "bmp", "gif", "tiff", "webp"})

_SIGNATURES: tuple[tuple[bytes, Kind], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
)
_NIFTI_HEADER_BYTES = 544  # NIfTI-2 header (540) and the 4-byte extension flag; NIfTI-1 needs 348


def sniff(data: bytes, name: str = "") -> Kind:
    """'png', 'jpeg', 'bmp', 'gif', 'tiff', 'webp', 'dicom', 'nifti' or 'unknown'.

    Works on a file's first kilobyte as well as on the whole file.
    """
    if data[128:132] == b"DICM":  # first: a DICOM preamble is free-form and may itself look like a TIFF header
        return "dicom"
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if is_nifti_header(data):
        return "nifti"
    lower = name.lower()
    if data[:2] == b"\x1f\x8b" and (lower.endswith(".nii.gz") or is_nifti_header(gunzip_head(data))):
        return "nifti"
    if lower.endswith(".dcm"):  # DICOM written without the 128-byte preamble and "DICM" marker
        return "dicom"
    return "unknown"


def is_nifti_header(head: bytes) -> bool:
    """True when `head` starts with a single-file or pair NIfTI-1 or NIfTI-2 header."""
    nifti1 = len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00")
    nifti2 = len(head) >= 540 and head[4:8] in (b"n+2\x00", b"ni2\x00")
    return nifti1 or nifti2


def gunzip_head(data: bytes, size: int = _NIFTI_HEADER_BYTES) -> bytes:
    """The first `size` bytes of a gzip stream (b"" when it is not one); inflates no more than that."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, size)
    except zlib.error:
        return b""
