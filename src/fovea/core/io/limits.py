"""Input limits: every reader checks them before it allocates."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 64 * 1024 * 1024  # one input file or download
    max_pixels: int = 100_000_000  # width x height of one image (decompression bombs)
    max_voxels: int = 400_000_000  # depth x height x width of one volume
    max_frames: int = 10_000  # frames of a video or pages of a multi-page image
    max_files: int = 1000  # files in one request or series
    url_timeout_s: float = 10.0
    # Hosts or networks (e.g. "127.0.0.1", "10.0.0.0/8") the URL guard lets through despite being private.
    allow_private_hosts: tuple[str, ...] = ()


DEFAULT_LIMITS = Limits()
