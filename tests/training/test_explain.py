"""Grad-CAM (`fovea explain`): the heat map's peak lies on the object, wherever the object is in the image."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import fovea
from fovea.errors import InputError
from fovea.training.explain import grad_cam
from tests.test_cli import fovea as run_cli

pytestmark = pytest.mark.slow


def _cat_in_a_corner(zoo_dir, corner: tuple[int, int]) -> np.ndarray:
    """A white 512x512 canvas with the cat photo shrunk into one quadrant (row, column), inside the center crop."""
    cat = Image.open(zoo_dir / "samples" / "chelsea.png").convert("RGB").resize((200, 200))
    canvas = np.full((512, 512, 3), 255, np.uint8)
    top, left = (40 + 232 * corner[0], 40 + 232 * corner[1])
    canvas[top : top + 200, left : left + 200] = np.asarray(cat)
    return canvas


@pytest.mark.parametrize("corner", [(0, 0), (1, 1)])
def test_heat_peaks_on_the_cat_in_its_quadrant(zoo_dir, corner):
    model = fovea.load(zoo_dir / "efficientnet-lite0-imagenet.onnx")
    canvas = _cat_in_a_corner(zoo_dir, corner)
    explanation = grad_cam(model, canvas)
    assert "cat" in explanation.class_name.lower()  # the model does see the cat
    assert explanation.heat.shape == (512, 512)
    x, y = explanation.peak
    assert (y >= 256, x >= 256) == (bool(corner[0]), bool(corner[1]))
    # Most of the evidence is in that quadrant, not just the peak.
    quadrant = explanation.heat[256 * corner[0] : 256 * (corner[0] + 1), 256 * corner[1] : 256 * (corner[1] + 1)]
    assert quadrant.sum() > 0.6 * explanation.heat.sum()


def test_cli_writes_the_overlay(zoo_dir, tmp_path):
    image = tmp_path / "cat.png"
    Image.fromarray(_cat_in_a_corner(zoo_dir, (1, 0))).save(image)
    out = tmp_path / "heat.png"
    result = run_cli("explain", zoo_dir / "efficientnet-lite0-imagenet.onnx", image, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "strongest evidence at" in result.stdout
    overlay = np.asarray(Image.open(out))
    assert overlay.shape == (512, 512, 3)
    # The heat colours the cat's quadrant (JET red/yellow) and leaves the opposite one blue-tinted white.
    hot, cold = overlay[300:480, 40:240].astype(int), overlay[40:240, 300:480].astype(int)
    assert (hot[..., 0] - hot[..., 2]).mean() > (cold[..., 0] - cold[..., 2]).mean() + 40


def test_a_non_classifier_is_refused(zoo_dir):
    with pytest.raises(InputError, match="explains classification models"):
        grad_cam(fovea.load(zoo_dir / "unet-random.onnx"), np.zeros((64, 64, 3), np.uint8))


def test_without_torch_the_error_says_what_to_install(zoo_dir, tmp_path):
    # A child interpreter where torch cannot be imported, as on a serving-only install.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from fovea.cli import app\n"
        f"sys.argv = ['fovea', 'explain', {str(zoo_dir / 'digits-lenet.onnx')!r}, "
        f"{str(zoo_dir / 'samples' / 'chelsea.png')!r}, '--out', {str(tmp_path / 'x.png')!r}]\n"
        "app()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert "need PyTorch: install fovea with its `train` extra" in result.stderr and "Traceback" not in result.stderr
