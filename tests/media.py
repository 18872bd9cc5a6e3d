"""Test media made on the spot: videos whose frames say their own index."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def frame_pixels(index: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """Frame `index` is a flat grey of 8 * index (so a decoded frame tells its index back)."""
    return np.full((*size, 3), 8 * index, np.uint8)


def index_of(pixels: np.ndarray) -> int:
    return round(float(pixels.mean()) / 8)


def write_video(path: Path, frames: int, *, fps: int = 10, size: tuple[int, int] = (48, 64)) -> Path:
    """A lossless (FFV1) video of `frames` frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "bgr0"
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(k, size), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
