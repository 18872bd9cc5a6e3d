"""Video frame selection (the Supervisely span rules) and decoding with PyAV."""

import pytest

from fovea.core.io import Limits, VideoInfo, iter_frames, probe_video, video_frame_indices
from fovea.errors import InputError, LimitExceeded
from tests.media import index_of, write_video

INFO = VideoInfo(frames_count=30, fps=10.0, width=64, height=48)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({}, list(range(30))),
        ({"start": 5, "count": 4}, [5, 6, 7, 8]),
        ({"start": 5, "count": 5, "stride": 2}, [5, 7, 9]),
        ({"start": 5, "count": 4, "direction": "backward"}, [5, 4, 3, 2]),
        ({"start": 3, "direction": "backward"}, [3, 2, 1, 0]),
        ({"start": 28, "count": 10}, [28, 29]),
        ({"start": 2, "end": 6}, [2, 3, 4, 5, 6]),
        ({"start": 0, "duration": 0.5}, [0, 1, 2, 3, 4]),
        ({"start": 4, "count": 0}, []),
    ],
)
def test_frame_selection(request_, expected):
    assert video_frame_indices(INFO, **request_) == expected


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"start": 30}, "outside the video"),
        ({"start": -1}, "outside the video"),
        ({"count": -2}, "must not be negative"),
        ({"stride": 0}, "stride"),
        ({"direction": "sideways"}, "direction"),
    ],
)
def test_bad_frame_requests(request_, message):
    with pytest.raises(InputError, match=message):
        video_frame_indices(INFO, **request_)


def test_decoding_follows_the_visiting_order(tmp_path):
    data = write_video(tmp_path / "clip.mkv", 30).read_bytes()
    info = probe_video(data, name="clip.mkv")
    assert (info.frames_count, info.fps, info.width, info.height) == (30, 10.0, 64, 48)
    forward = video_frame_indices(info, start=3, count=6, stride=2)
    assert [(i, index_of(img.pixels)) for i, img in iter_frames(data, forward, name="clip.mkv")] == [
        (3, 3),
        (5, 5),
        (7, 7),
    ]
    backward = video_frame_indices(info, start=20, count=3, direction="backward")
    frames = list(iter_frames(data, backward, name="clip.mkv"))
    assert [i for i, _ in frames] == [20, 19, 18] and [index_of(img.pixels) for _, img in frames] == [20, 19, 18]
    assert frames[0][1].name == "clip.mkv#20"


def test_video_errors(tmp_path):
    with pytest.raises(InputError, match="not a readable video"):
        probe_video(b"definitely not a video" * 100, name="x.mp4")
    with pytest.raises(InputError, match="empty"):
        probe_video(b"", name="x.mp4")
    data = write_video(tmp_path / "clip.mkv", 5).read_bytes()
    with pytest.raises(LimitExceeded, match="over the limit of 2"):
        list(iter_frames(data, [0, 1, 2], limits=Limits(max_frames=2)))
