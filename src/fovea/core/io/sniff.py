"""Which reader an input needs, from its first bytes (never only from its name)."""

from __future__ import annotations

import gzip
import zlib

_SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
]


def sniff(data: bytes, name: str = "") -> str:
    """'png', 'jpeg', 'bmp', 'gif', 'tiff', 'webp', 'dicom', 'nifti' or 'unknown'."""
    if data[128:132] == b"DICM":  # first: a DICOM preamble may itself look like a TIFF header
        return "dicom"
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if _is_nifti_header(data):
        return "nifti"
    if data[:2] == b"\x1f\x8b" and _is_nifti_header(_gunzip_head(data)):
        return "nifti"
    if name.lower().endswith(".dcm"):  # DICOM without the 128-byte preamble
        return "dicom"
    return "unknown"


def _is_nifti_header(head: bytes) -> bool:
    nifti1 = len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00")
    nifti2 = len(head) >= 540 and head[4:8] in (b"n+2\x00", b"ni2\x00")
    return nifti1 or nifti2


def _gunzip_head(data: bytes, size: int = 544) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, size)
    except (zlib.error, gzip.BadGzipFile):
        return b""
