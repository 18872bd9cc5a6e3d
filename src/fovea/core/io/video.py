"""Video frames through PyAV: which frames to visit (start, count, direction, stride) and reading them.

Frame `k` is the k-th frame in presentation order. Reading seeks instead of decoding from the start
when the container's packets carry timestamps (mp4, mkv, avi, webm, mov ...): one demux pass (no
decoding) maps each frame's timestamp to its index and tells where the keyframes are, so a late start
frame or a wide stride costs one keyframe interval of decoding, not the whole file before it.
"""

from __future__ import annotations

import bisect
import io
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fovea.core.io.limits import DEFAULT_LIMITS, Limits
from fovea.core.io.media import Image
from fovea.errors import InputError, LimitExceeded

VideoSource = bytes | str | Path
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg"})  # files taken as videos

# Seeking costs a decoder flush and a keyframe interval of decoding: only worth it to skip more frames.
SEEK_MIN_GAP = 16
# Backward reading decodes spans forward and yields them reversed; decoded frames held at once stay
# under this many bytes, so a long backward request does not hold the whole video in memory.
BACKWARD_BUFFER_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class VideoInfo:
    frames_count: int
    fps: float
    width: int
    height: int


def probe_video(source: VideoSource, *, name: str | None = None, limits: Limits = DEFAULT_LIMITS) -> VideoInfo:
    """Frame count, frame rate and size of a video file or its bytes; InputError if it is not a readable video."""
    name = _name(source, name)
    with _open(source, name, limits) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        count = stream.frames
        if not count:  # some containers (mkv, webm) do not store a frame count: count packets, no decoding
            count = sum(1 for _ in _demux(container, stream, name))
        return VideoInfo(int(count), fps, stream.codec_context.width, stream.codec_context.height)


def video_frame_indices(
    info: VideoInfo,
    start: int = 0,
    count: int | None = None,
    direction: str = "forward",
    stride: int = 1,
    *,
    end: int | None = None,
    duration: float | None = None,
) -> list[int]:
    """The frames a request visits, in visiting order (reference/supervisely-session-protocol.md §8).

    The span is `count` frames, else `start..end` inclusive, else `round(duration * fps)`, else up to the
    last frame (forward) or down to frame 0 (backward); every `stride`-th frame of it that lies inside
    the video is visited.
    """
    if direction not in ("forward", "backward"):
        raise InputError(f"direction must be 'forward' or 'backward', got {direction!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InputError(f"stride must be an integer of at least 1, got {stride!r}")
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
        if duration < 0:
            raise InputError(f"duration must not be negative, got {duration}")
        span = round(duration * info.fps)
    else:
        span = info.frames_count - start if step > 0 else start + 1
    # Frames past either end of the video are not visited; the request does not fail for them.
    inside = (info.frames_count - 1 - start) // stride + 1 if step > 0 else start // stride + 1
    visits = min(math.ceil(span / stride), inside)
    return [start + step * k * stride for k in range(visits)]


def iter_frames(
    source: VideoSource,
    frames: Sequence[int] | None = None,
    *,
    start: int = 0,
    count: int | None = None,
    direction: str = "forward",
    stride: int = 1,
    end: int | None = None,
    duration: float | None = None,
    name: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Iterator[tuple[int, Image]]:
    """Yield `(frame_index, RGB Image named "<name>#<index>")` in visiting order.

    The frames are `frames` when given (strictly increasing or strictly decreasing, e.g. from
    `video_frame_indices`, which a caller needs anyway to report a total), else the span that `start`,
    `count`, `direction`, `stride`, `end` and `duration` describe. Indices past the video's last decodable
    frame are skipped.
    """
    name = _name(source, name)
    if frames is None:
        info = probe_video(source, name=name, limits=limits)
        frames = video_frame_indices(info, start, count, direction, stride, end=end, duration=duration)
    indices = list(frames)
    if len(indices) > limits.max_frames:
        raise LimitExceeded(f"{len(indices)} frames requested, over the limit of {limits.max_frames}")
    if not indices:
        return
    steps = [b - a for a, b in itertools.pairwise(indices)]
    if min(indices) < 0 or not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
        raise ValueError("frame indices must be non-negative and strictly increasing or strictly decreasing")
    with _Video(source, name, limits) as video:
        if indices[0] <= indices[-1]:
            for index, frame in video.frames(indices):
                yield index, video.image(index, frame)
            return
        # Backward: decode bounded spans forward, from the last one down, and yield each one reversed.
        width, height = video.size
        per_span = max(1, BACKWARD_BUFFER_BYTES // max(1, width * height * 3))
        for top in range(0, len(indices), per_span):
            part = indices[top : top + per_span]
            held = {index: video.image(index, frame) for index, frame in video.frames(part[::-1])}
            for index in part:
                if index in held:
                    yield index, held.pop(index)


# -- internals -----------------------------------------------------------------------------------------------


def _name(source: VideoSource, name: str | None) -> str:
    if name is not None:
        return name
    return Path(source).name if isinstance(source, (str, Path)) else ""


def _open(source: VideoSource, name: str, limits: Limits) -> Any:  # -> av.container.InputContainer
    import av

    label = name or "video"
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError:
            raise InputError(f"cannot read {label}: file not found") from None
        if size > limits.max_bytes:
            raise LimitExceeded(f"{label} is {size} bytes, over the limit of {limits.max_bytes}")
        file: Any = str(path)
    else:
        size = len(source)
        if size > limits.max_bytes:
            raise LimitExceeded(f"{label} is {size} bytes, over the limit of {limits.max_bytes}")
        file = io.BytesIO(source)
    if size == 0:
        raise InputError(f"{label} is empty")
    try:
        container = av.open(file)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise InputError(f"{label}: not a readable video ({_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise InputError(f"{label} has no video stream")
        codec = container.streams.video[0].codec_context
        if codec.width <= 0 or codec.height <= 0:
            raise InputError(f"{label}: not a readable video (no frame size)")
        if codec.width * codec.height > limits.max_pixels:
            raise LimitExceeded(
                f"{label}: frames of {codec.width}x{codec.height} are over the limit of {limits.max_pixels} pixels"
            )
    except BaseException:
        container.close()
        raise
    return container


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _demux(container: Any, stream: Any, name: str) -> Iterator[Any]:
    """The stream's packets that carry data (the last, empty one only flushes the decoder)."""
    import av

    try:
        for packet in container.demux(stream):
            if packet.size:
                yield packet
    except av.error.FFmpegError as exc:
        raise InputError(f"{name or 'video'}: corrupt video ({_reason(exc)})") from None


@dataclass(frozen=True, slots=True)
class _Index:
    """Presentation timestamps in frame order, and which frames are keyframes."""

    pts: list[int]
    position: dict[int, int]  # pts -> frame index
    keyframes: list[int]  # frame indices, increasing

    def keyframe_before(self, index: int) -> int:
        at = bisect.bisect_right(self.keyframes, index)
        return self.keyframes[at - 1] if at else 0


class _Video:
    """An open video that decodes frames at increasing indices, seeking when that skips enough decoding."""

    def __init__(self, source: VideoSource, name: str, limits: Limits) -> None:
        self.source, self.name, self.limits = source, name, limits
        self.container = _open(source, name, limits)
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.size = self.stream.codec_context.width, self.stream.codec_context.height
        self._index: _Index | None = None
        self._indexed = False
        self._used = False  # the container has been decoded from: starting over needs a seek or a reopen

    def __enter__(self) -> _Video:
        return self

    def __exit__(self, *exc: object) -> None:
        self.container.close()

    @property
    def index(self) -> _Index | None:
        """Built on first use with a demux pass of its own; None when packets lack timestamps."""
        if not self._indexed:
            self._indexed = True
            with _open(self.source, self.name, self.limits) as container:
                stream = container.streams.video[0]
                entries = [(p.pts, p.is_keyframe) for p in _demux(container, stream, self.name)]
            pts = sorted(t for t, _ in entries if t is not None)
            if pts and len(pts) == len(entries) and len(set(pts)) == len(pts):
                position = {t: i for i, t in enumerate(pts)}
                keyframes = sorted(position[t] for t, key in entries if key)
                self._index = _Index(pts, position, keyframes or [0])
        return self._index

    def image(self, index: int, frame: Any) -> Image:
        return Image(frame.to_ndarray(format="rgb24"), name=f"{self.name}#{index}")

    def frames(self, indices: Sequence[int]) -> Iterator[tuple[int, Any]]:
        """(index, av.VideoFrame) for the strictly increasing `indices` that exist in the video."""
        decoded: Iterator[tuple[int, Any]] | None = None
        held: tuple[int, Any] | None = None  # decoded past a missing index; serves a later one
        current = -1  # index of the last frame taken from the decoder
        for target in indices:
            if decoded is None or (target - current > SEEK_MIN_GAP and self._worth_seeking(current, target)):
                decoded, held = self._decode_from(target), None
            while True:
                item = held or next(decoded, None)
                held = None
                if item is None:
                    return  # past the last frame
                current = item[0]
                if current == target:
                    yield item
                    break
                if current > target:
                    held = item
                    break

    def _worth_seeking(self, current: int, target: int) -> bool:
        index = self.index
        return index is not None and index.keyframe_before(target) - current > SEEK_MIN_GAP

    def _decode_from(self, target: int) -> Iterator[tuple[int, Any]]:
        """Frames from a keyframe at or before `target` on (from the first frame when seeking is not possible)."""
        index = self.index if target > SEEK_MIN_GAP else None
        if index is not None:
            keyframe = index.keyframe_before(target)
            self.container.seek(index.pts[keyframe], stream=self.stream, backward=True, any_frame=False)
            self._used = True
            frames = self._positions(index)
            first = next(frames, None)
            if first is not None and first[1].pts in index.position and first[0] <= target:

                def resumed() -> Iterator[tuple[int, Any]]:
                    yield first
                    yield from frames

                return resumed()
            # The seek landed after the target (an index the container does not honour): decode from the start.
            self._indexed, self._index = True, None
        if self._used:
            self.container.close()
            self.container = _open(self.source, self.name, self.limits)
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO"
        self._used = True
        return self._positions(self._index)

    def _positions(self, index: _Index | None) -> Iterator[tuple[int, Any]]:
        """Decoded frames with their indices: by timestamp when indexed, else by counting from the first."""
        import av

        frames = self.container.decode(self.stream)
        current = -1
        while True:
            try:
                frame = next(frames, None)
            except av.error.FFmpegError as exc:
                where = f"after frame {current}" if current >= 0 else "at its first frame"
                raise InputError(f"{self.name or 'video'}: corrupt video {where} ({_reason(exc)})") from None
            if frame is None:
                return
            known = index.position.get(frame.pts) if index is not None and frame.pts is not None else None
            current = current + 1 if known is None else known
            yield current, frame
