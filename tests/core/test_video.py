"""Video frame selection (the Supervisely span rules) and decoding with PyAV, on videos made in the test."""

import io
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from fovea.core.io import video
from fovea.core.io.limits import Limits
from fovea.core.io.video import VideoInfo, iter_frames, probe_video, video_frame_indices
from fovea.errors import InputError, LimitExceeded

INFO = VideoInfo(frames_count=30, fps=10.0, width=64, height=48)
SIZE = (48, 64)  # height, width


def frame_pixels(index: int) -> np.ndarray:
    """Frame `index` writes its index in binary: eight 8-px columns, white for a set bit (survives lossy codecs)."""
    pixels = np.zeros((*SIZE, 3), np.uint8)
    for bit in range(8):
        if index >> bit & 1:
            pixels[:, 8 * bit : 8 * bit + 8] = 255
    return pixels


def index_of(pixels: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if pixels[:, 8 * bit + 2 : 8 * bit + 6].mean() > 128)


def write_video(path: Path, frames: int, codec: str = "ffv1", *, fps: int = 10, options=None) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.height, stream.width = SIZE
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        for k in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame_pixels(k), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# Lossless, every frame a keyframe; H.264 with B-frames (decode order != presentation order); MPEG-4 in AVI.
FORMATS = [
    ("clip.mkv", "ffv1", None),
    ("clip.mp4", "libx264", {"g": "12", "bf": "2"}),
    ("clip.avi", "mpeg4", {"g": "12", "bf": "2"}),
]


@pytest.fixture(scope="module", params=FORMATS, ids=[f[1] for f in FORMATS])
def long_clip(request, tmp_path_factory) -> bytes:
    name, codec, options = request.param
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this PyAV build")
    return write_video(tmp_path_factory.mktemp("video") / name, 200, codec, fps=25, options=options).read_bytes()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mkv", 30)


def decoded(frames) -> list[tuple[int, int]]:
    """(index reported, index read back from the pixels) per yielded frame."""
    return [(index, index_of(image.pixels)) for index, image in frames]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({}, list(range(30))),
        ({"start": 5, "count": 4}, [5, 6, 7, 8]),
        ({"start": 5, "count": 5, "stride": 2}, [5, 7, 9]),
        ({"start": 5, "count": 6, "stride": 2}, [5, 7, 9]),
        ({"start": 5, "count": 4, "direction": "backward"}, [5, 4, 3, 2]),
        ({"start": 3, "direction": "backward"}, [3, 2, 1, 0]),
        ({"start": 9, "count": 10, "direction": "backward", "stride": 4}, [9, 5, 1]),
        ({"start": 28, "count": 10}, [28, 29]),
        ({"start": 2, "end": 6}, [2, 3, 4, 5, 6]),
        ({"start": 6, "end": 2, "direction": "backward"}, [6, 5, 4, 3, 2]),
        ({"start": 0, "duration": 0.5}, [0, 1, 2, 3, 4]),
        ({"start": 0, "stride": 7}, [0, 7, 14, 21, 28]),
        ({"start": 4, "count": 0}, []),
        ({"start": 29, "count": 3, "direction": "backward", "stride": 10}, [29]),
    ],
)
def test_frame_selection(request_, expected):
    assert video_frame_indices(INFO, **request_) == expected


def test_frame_selection_positionally():
    assert video_frame_indices(INFO, 10, 3, "backward", 2) == [10, 8]  # ceil(3 / 2) visits


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"start": 30}, "outside the video"),
        ({"start": -1}, "outside the video"),
        ({"count": -2}, "must not be negative"),
        ({"stride": 0}, "stride"),
        ({"stride": 1.5}, "stride"),
        ({"direction": "sideways"}, "direction"),
        ({"duration": -1.0}, "duration"),
    ],
)
def test_bad_frame_requests(request_, message):
    with pytest.raises(InputError, match=message):
        video_frame_indices(INFO, **request_)


def test_probe_from_bytes_and_from_a_path(clip):
    expected = VideoInfo(frames_count=30, fps=10.0, width=64, height=48)
    assert probe_video(clip.read_bytes()) == expected
    assert probe_video(clip) == probe_video(str(clip)) == expected


def test_frames_carry_their_index_and_a_name(clip):
    frames = list(iter_frames(clip, start=20, count=2))
    assert [image.name for _, image in frames] == ["clip.mkv#20", "clip.mkv#21"]
    assert frames[0][1].pixels.shape == (48, 64, 3) and frames[0][1].pixels.dtype == np.uint8
    named = list(iter_frames(clip.read_bytes(), [3], name="upload.mkv"))
    assert named[0][1].name == "upload.mkv#3" and index_of(named[0][1].pixels) == 3


@pytest.mark.parametrize(
    "request_",
    [
        {},
        {"start": 150, "count": 10},
        {"start": 3, "count": 40, "stride": 3},
        {"start": 0, "stride": 45},
        {"start": 199, "direction": "backward"},
        {"start": 180, "count": 20, "direction": "backward", "stride": 7},
        {"start": 100, "end": 90, "direction": "backward"},
    ],
)
def test_decoding_follows_the_visiting_order(long_clip, request_):
    expected = video_frame_indices(probe_video(long_clip), **request_)
    got = decoded(iter_frames(long_clip, **request_))
    assert got == [(i, i) for i in expected]


def test_explicit_frame_lists_match_the_span_arguments(long_clip):
    frames = [120, 90, 60, 30]
    assert decoded(iter_frames(long_clip, frames)) == [(i, i) for i in frames]
    with pytest.raises(ValueError, match="strictly"):
        list(iter_frames(long_clip, [3, 5, 4]))


def test_a_late_start_seeks_instead_of_decoding_everything_before_it(long_clip, monkeypatch):
    counted = []
    positions = video._Video._positions

    def counting(self, index):
        for item in positions(self, index):
            counted.append(item[0])
            yield item

    monkeypatch.setattr(video._Video, "_positions", counting)
    assert decoded(iter_frames(long_clip, start=180, count=5)) == [(i, i) for i in range(180, 185)]
    assert len(counted) < 40  # about one keyframe interval (12 frames here) plus the five asked for
    counted.clear()
    assert decoded(iter_frames(long_clip, start=0, stride=60)) == [(0, 0), (60, 60), (120, 120), (180, 180)]
    assert len(counted) < 100  # jumps between far-apart frames instead of decoding the 181 frames up to 180


def test_backward_reading_holds_a_bounded_span(long_clip, monkeypatch):
    monkeypatch.setattr(video, "BACKWARD_BUFFER_BYTES", 64 * 48 * 3 * 16)  # 16 frames at a time
    got = decoded(iter_frames(long_clip, start=150, count=100, direction="backward"))
    assert got == [(i, i) for i in range(150, 50, -1)]


def test_count_zero_and_requests_outside_the_video(clip):
    assert list(iter_frames(clip, start=4, count=0)) == []
    assert list(iter_frames(clip, [])) == []
    with pytest.raises(InputError, match="outside the video"):
        list(iter_frames(clip, start=30))
    assert decoded(iter_frames(clip, [28, 29, 30, 31])) == [(28, 28), (29, 29)]  # past the end: skipped


def test_limits(clip):
    with pytest.raises(LimitExceeded, match="over the limit of 2"):
        list(iter_frames(clip, start=0, count=3, limits=Limits(max_frames=2)))
    assert len(list(iter_frames(clip, start=28, count=3, limits=Limits(max_frames=2)))) == 2  # 2 frames visited
    with pytest.raises(LimitExceeded, match="pixels"):
        probe_video(clip, limits=Limits(max_pixels=64 * 47))
    with pytest.raises(LimitExceeded, match="bytes"):
        list(iter_frames(clip.read_bytes(), [0], limits=Limits(max_bytes=100)))


def test_unreadable_videos(clip, tmp_path):
    with pytest.raises(InputError, match="not a readable video"):
        probe_video(b"definitely not a video" * 100, name="x.mp4")
    with pytest.raises(InputError, match=r"x\.mp4 is empty"):
        probe_video(b"", name="x.mp4")
    with pytest.raises(InputError, match="file not found"):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="not a readable video"):
        list(iter_frames(clip.read_bytes()[:200], [0], name="cut.mkv"))
    sound = io.BytesIO()
    with wave.open(sound, "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 800)
    with pytest.raises(InputError, match="has no video stream"):
        probe_video(sound.getvalue(), name="sound.wav")
