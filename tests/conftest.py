"""Shared fixtures: the demo zoo, built once per test session (or reused from $FOVEA_TEST_ZOO), and the ImageNet
classifier served with media ids, which the dialect tests (tests/server) and the client's tests (tests/client) share."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.media import write_video
from tests.servers import serve


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory) -> Path:
    """A built demo zoo. Point $FOVEA_TEST_ZOO at a zoo folder to reuse it across runs (what is missing is built)."""
    from fovea.zoo import build_zoo

    reuse = os.environ.get("FOVEA_TEST_ZOO")
    root = Path(reuse).expanduser() if reuse else tmp_path_factory.mktemp("zoo")
    build_zoo(root)
    return root


@pytest.fixture(scope="session")
def media_dir(zoo_dir, tmp_path_factory) -> Path:
    """Image ids 0 (chelsea.jpg) and 1 (coffee.jpg); video id 0 (clip.mkv, 30 frames)."""
    folder = tmp_path_factory.mktemp("media")
    for name in ("chelsea.jpg", "coffee.jpg"):
        (folder / name).write_bytes((zoo_dir / "samples" / name).read_bytes())
    write_video(folder / "clip.mkv", 30)
    return folder


@pytest.fixture(scope="session")
def imagenet_url(zoo_dir, media_dir) -> Iterator[str]:
    with serve(
        zoo_dir / "efficientnet-lite0-imagenet.onnx",
        *("--media", str(media_dir), "--allow-url-host", "127.0.0.1"),
        *("--workers", "3"),  # more than the cores: side-by-side runs are exercised on any machine
    ) as url:
        yield url
