"""Video frames through PyAV: which frames to visit (start, count, direction, stride) and reading them."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

from fovea.core.io.limits import DEFAULT_LIMITS, Limits
from fovea.core.io.media import Image
from fovea.errors import InputError, LimitExceeded


@dataclass(frozen=True, slots=True)
class VideoInfo:
    frames_count: int
    fps: float
    width: int
    height: int


def _open(data: bytes, name: str):  # -> av.container.InputContainer
    import av

    if not data:
        raise InputError(f"{name or 'video'} is empty")
    try:
        container = av.open(io.BytesIO(data))
        if not container.streams.video:
            raise InputError(f"{name or 'video'} has no video stream")
        return container
    except (av.error.FFmpegError, ValueError) as exc:
        raise InputError(f"{name or 'video'}: not a readable video ({exc})") from None


def probe_video(data: bytes, *, name: str = "") -> VideoInfo:
    with _open(data, name) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        count = stream.frames
        if not count:  # some containers do not store a frame count: count by demuxing (no decoding)
            count = sum(1 for packet in container.demux(stream) if packet.size)
        return VideoInfo(int(count), fps, stream.codec_context.width, stream.codec_context.height)


def video_frame_indices(
    info: VideoInfo,
    *,
    start: int = 0,
    count: int | None = None,
    end: int | None = None,
    duration: float | None = None,
    direction: str = "forward",
    stride: int = 1,
) -> list[int]:
    """The frames a request visits, in visiting order (the Supervisely protocol's rules, §8)."""
    if direction not in ("forward", "backward"):
        raise InputError(f"direction must be 'forward' or 'backward', got {direction!r}")
    if stride < 1:
        raise InputError(f"stride must be at least 1, got {stride}")
    if not 0 <= start < info.frames_count:
        raise InputError(f"start frame {start} is outside the video (0..{info.frames_count - 1})")
    step = 1 if direction == "forward" else -1
    if count is not None:
        if count < 0:
            raise InputError(f"frame count must not be negative, got {count}")
        span = count
    elif end is not None:
        span = abs(end - start) + 1
    elif duration is not None:
        span = round(duration * info.fps)
    else:
        span = info.frames_count - start if step > 0 else start + 1
    visits = math.ceil(span / stride)
    indices = [start + step * k * stride for k in range(visits)]
    return [i for i in indices if 0 <= i < info.frames_count]


def iter_frames(
    data: bytes, indices: list[int], *, name: str = "", limits: Limits = DEFAULT_LIMITS
) -> Iterator[tuple[int, Image]]:
    """Decode the frames at `indices` and yield (index, RGB image) in the order of `indices`."""
    if len(indices) > limits.max_frames:
        raise LimitExceeded(f"{len(indices)} frames requested, over the limit of {limits.max_frames}")
    if not indices:
        return
    wanted = set(indices)
    backward = len(indices) > 1 and indices[1] < indices[0]
    lo, hi = min(indices), max(indices)
    held: dict[int, Image] = {}
    with _open(data, name) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for position, frame in enumerate(container.decode(stream)):
            if position > hi:
                break
            if position < lo or position not in wanted:
                continue
            image = Image(frame.to_ndarray(format="rgb24"), name=f"{name}#{position}")
            if image.pixels.shape[0] * image.pixels.shape[1] > limits.max_pixels:
                raise LimitExceeded(f"{name or 'video'}: frames are over the pixel limit")
            if backward:
                held[position] = image  # decoded forward once, yielded in reverse below
            else:
                yield position, image
    for position in indices if backward else ():
        if position in held:
            yield position, held.pop(position)
