"""Input limits, and the checks every reader runs with them before it allocates anything large."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from fovea.errors import InputError, LimitExceeded


@dataclass(frozen=True, slots=True)
class Limits:
    """What one input may cost. Readers check these from headers, before decoding."""

    max_bytes: int = 64 * 1024 * 1024  # one input file or download, as stored (compressed)
    max_pixels: int = 100_000_000  # width x height of one image or frame (decompression bombs)
    max_voxels: int = 400_000_000  # depth x height x width of one volume, or all frames of one image together
    max_frames: int = 10_000  # frames of a video or pages of a multi-page image
    # Width x height x samples x item size of one decoded image, frame or page, and the size a compressed
    # input (HTTP Content-Encoding, a deflated DICOM data set) may inflate to. The default holds RGBA at
    # `max_pixels`; a 16-bit 4-sample TIFF of as many pixels needs twice that.
    max_decoded_bytes: int = 400_000_000
    max_files: int = 1000  # files in one request or DICOM series
    url_timeout_s: float = 10.0  # each connect/read of a URL download, and the download as a whole
    # Hosts or networks ("minio.internal", "127.0.0.1", "10.0.0.0/8") the URL guard lets through although
    # they are not public addresses. Empty by default: an operator opts in, host by host.
    allow_private_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in (
            "max_bytes",
            "max_pixels",
            "max_voxels",
            "max_frames",
            "max_decoded_bytes",
            "max_files",
            "url_timeout_s",
        ):
            if not getattr(self, field) > 0:
                raise ValueError(f"Limits.{field} must be positive, got {getattr(self, field)!r}")
        if isinstance(self.allow_private_hosts, str):
            # A bare string would be iterated character by character.
            raise TypeError("Limits.allow_private_hosts is a tuple of hosts or networks, not a string")
        object.__setattr__(self, "allow_private_hosts", tuple(self.allow_private_hosts))


DEFAULT_LIMITS = Limits()


def label(name: str) -> str:
    """How an error message names an input that may have no name."""
    return name or "input"


def check_bytes(data: bytes, name: str, limits: Limits) -> None:
    """Refuse empty and over-size inputs."""
    if not data:
        raise InputError(f"{label(name)} is empty")
    if len(data) > limits.max_bytes:
        raise LimitExceeded(f"{label(name)} is {len(data)} bytes, over the limit of {limits.max_bytes}")


def check_pixels(width: int, height: int, name: str, limits: Limits) -> None:
    """Refuse a header that declares no pixels or more than `max_pixels` (a decompression bomb)."""
    if width <= 0 or height <= 0:
        raise InputError(f"{label(name)} has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise LimitExceeded(f"{label(name)} is {width}x{height} pixels, over the limit of {limits.max_pixels} pixels")


def check_decoded(width: int, height: int, name: str, limits: Limits, *, samples: int = 3, item_size: int = 1) -> None:
    """`check_pixels`, then refuse an image whose decoded array (w x h x samples x item size) is over budget.

    Readers pass the file's own samples and item size; at least 3 bytes a pixel are counted, as every image
    ends up 8-bit RGB.
    """
    check_pixels(width, height, name, limits)
    decoded = width * height * max(samples * item_size, 3)
    if decoded > limits.max_decoded_bytes:
        raise LimitExceeded(
            f"{label(name)}: {width}x{height} pixels of {samples} x {item_size}-byte samples decode to {decoded} "
            f"bytes, over the limit of {limits.max_decoded_bytes}"
        )


class Inflater:
    """A zlib/gzip stream inflated piece by piece, refusing output past `limit` before producing it.

    `wbits` as for `zlib.decompressobj`: 16 + 15 for gzip, 15 for zlib, -15 for raw deflate, 32 + 15 for
    gzip or zlib by header.
    """

    def __init__(self, wbits: int, limit: int, what: str) -> None:
        self._stream = zlib.decompressobj(wbits)
        self._limit = limit
        self._what = what
        self.size = 0

    def feed(self, chunk: bytes) -> bytes:
        try:
            # One byte past the room left: getting it means the output would go over the limit.
            out = self._stream.decompress(chunk, self._limit - self.size + 1)
        except zlib.error as exc:
            raise InputError(f"{self._what}: corrupt compressed data ({exc})") from None
        self.size += len(out)
        if self.size > self._limit:
            raise LimitExceeded(f"{self._what} inflates past the limit of {self._limit} bytes")
        return out

    def check_complete(self) -> None:
        """Refuse a stream that stopped before its end (a truncated download or file)."""
        if not self._stream.eof:
            raise InputError(f"{self._what}: compressed data is truncated")


def read_file(path: str | Path, limits: Limits, name: str = "") -> bytes:
    """A file's bytes, refusing missing, unreadable and over-size files without reading more than the limit."""
    path = Path(path)
    name = name or path.name
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limits.max_bytes:
                raise LimitExceeded(f"{name} is {size} bytes, over the limit of {limits.max_bytes}")
            data = handle.read(limits.max_bytes + 1)  # never more than the limit, even if the file grows
    except FileNotFoundError:
        raise InputError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    check_bytes(data, name, limits)
    return data
