"""Real `fovea serve-model` processes for the dialect tests, with models made for them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fovea.core.card import ModelCard
from tests.core.graphs import bright_pixels_segmenter, constant_outputs
from tests.servers import serve

ROOT = Path(__file__).resolve().parents[2]


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
