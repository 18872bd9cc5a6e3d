"""Real `fovea serve-model` processes on free loopback ports, with models and media made for the tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from fovea.core.card import ModelCard
from tests.core.graphs import bright_pixels_segmenter, constant_outputs
from tests.media import write_video

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nobody listens on now; another process may take it before ours binds, so servers are started with
    `server_process`, which tries again on another port when that happens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BIND_ATTEMPTS = 5


@contextlib.contextmanager
def server_process(
    command_for: Callable[[int], list[str]],
    ready: str = "/readyz",
    status: int = 200,
    env: dict[str, str] | None = None,
    timeout_s: float = 60,
) -> Iterator[subprocess.Popen]:
    """Start the server `command_for(port)` on a free port and yield its process (its URL as `.url`) once `ready`
    answers `status`; stop it afterwards. A port taken between choosing and binding is retried on another one."""
    for attempt in range(BIND_ATTEMPTS):
        port = free_port()
        process = subprocess.Popen(
            command_for(port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    error = process.stderr.read()
                    if "address already in use" in error.lower() and attempt + 1 < BIND_ATTEMPTS:
                        break  # lost the race for the port: try another
                    raise RuntimeError(f"the server exited: {error}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}{ready}", timeout=1).status_code == status:
                        process.url = url
                        yield process
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer {ready} in {timeout_s:.0f} s")
                time.sleep(0.1)
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    raise RuntimeError(f"no free port after {BIND_ATTEMPTS} attempts")


@contextlib.contextmanager
def running(command_for: Callable[[int], list[str]], ready: str = "/readyz", status: int = 200) -> Iterator[str]:
    """`server_process`, yielding the server's URL."""
    with server_process(command_for, ready, status) as process:
        yield process.url


@contextlib.contextmanager
def serve(model: Path, *args: str) -> Iterator[str]:
    """Start `fovea serve-model MODEL ARGS` and yield its base URL once it is ready; stop it afterwards."""
    with running(
        lambda port: [sys.executable, "-m", "fovea.cli", "serve-model", str(model), "--port", str(port), *args]
    ) as url:
        yield url


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


@pytest.fixture(scope="session")
def segmenter_url(tmp_path_factory) -> Iterator[str]:
    """A 2-class segmenter at 64x64 whose `bright` class is every pixel with a bright red channel."""
    card = ModelCard(
        name="bright",
        task="segmentation",
        classes=[{"name": "background", "display": False}, {"name": "bright", "color": "#FF0000"}],
        input={"size": (64, 64)},
        decoder={"kind": "argmax"},
    )
    with serve(bright_pixels_segmenter(tmp_path_factory.mktemp("seg") / "seg.onnx", card)) as url:
        yield url


DETECTOR_BOXES = [[100, 50, 300, 200], [10, 10, 40, 60]]  # in the 640x480 original, stretched to 320x320


@pytest.fixture(scope="session")
def detector_path(tmp_path_factory) -> Path:
    """A detector whose yolov8 output is fixed: a dog (0.9) and a cat (0.6) at DETECTOR_BOXES of a 640x480 image."""
    card = ModelCard(
        name="pets-detector",
        task="detection",
        classes=["cat", "dog", "bird"],
        input={"size": (320, 320)},
        decoder={"kind": "yolov8"},
    )
    out = np.zeros((1, 7, 2), np.float32)
    for anchor, ((x1, y1, x2, y2), label, score) in enumerate(zip(DETECTOR_BOXES, (1, 0), (0.9, 0.6), strict=True)):
        sx, sy = 0.5, 320 / 480
        out[0, :4, anchor] = [(x1 + x2) / 2 * sx, (y1 + y2) / 2 * sy, (x2 - x1) * sx, (y2 - y1) * sy]
        out[0, 4 + label, anchor] = score
    return constant_outputs(tmp_path_factory.mktemp("det") / "detector.onnx", card, {"output0": out})


@pytest.fixture(scope="session")
def detector_url(detector_path) -> Iterator[str]:
    with serve(detector_path) as url:
        yield url


@pytest.fixture(scope="session")
def supervisely_python() -> Path:
    """A Python with the unmodified `supervisely` package, in its own virtualenv (it pins its own deps)."""
    given = os.environ.get("FOVEA_SUPERVISELY_PYTHON")
    if given:
        return Path(given)
    venv = ROOT / ".venv-supervisely"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "supervisely==6.74.51"], check=True)
    return python
