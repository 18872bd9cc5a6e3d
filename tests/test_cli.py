"""The `fovea` command as a user runs it: a real subprocess, real files."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fovea.core.card import ModelCard
from tests.core.graphs import bright_pixels_segmenter, constant_outputs


def fovea(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fovea.cli", *map(str, args)], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    card = ModelCard(
        task="classification",
        classes=["cat", "dog", "bird"],
        input={"size": (32, 32)},
        decoder={"kind": "softmax"},
    )
    constant_outputs(root / "cls.onnx", card, {"logits": np.array([[0.0, 2.0, 1.0]], np.float32)})
    seg = ModelCard(
        task="segmentation",
        classes=["background", "bright"],
        input={"size": (64, 64)},
        decoder={"kind": "argmax", "background_index": 0},
    )
    bright_pixels_segmenter(root / "seg.onnx", seg)
    images = root / "images"
    images.mkdir()
    for i in range(3):
        pixels = np.zeros((48, 64, 3), np.uint8)
        pixels[10:30, 20 + i : 40 + i, 0] = 255
        Image.fromarray(pixels).save(images / f"img{i}.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return root


def test_predict_a_folder_prints_canonical_json(workdir):
    result = fovea("predict", workdir / "cls.onnx", workdir / "images", "--set", "top_k=2")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["source"] for row in rows] == ["img0.png", "img1.png", "img2.png"]
    assert [c["name"] for c in rows[0]["classes"]] == ["dog", "bird"]


def test_predict_aicoco_and_draw(workdir, tmp_path):
    out = tmp_path / "drawn"
    result = fovea(
        "predict", workdir / "seg.onnx", workdir / "images" / "img1.png", "--format", "aicoco", "--draw", out
    )
    assert result.returncode == 0, result.stderr
    aicoco = json.loads(result.stdout)
    assert aicoco["images"][0]["file_name"] == "img1.png"
    assert [c["name"] for c in aicoco["categories"]] == ["background", "bright"]
    assert aicoco["annotations"], "the bright square should be segmented"
    drawn = np.asarray(Image.open(out / "img1.png"))
    assert drawn.shape[:2] == (48, 64)
    original = np.asarray(Image.open(workdir / "images" / "img1.png"))
    assert (drawn[15:25, 25:35] != original[15:25, 25:35]).any(), "the mask overlay should tint the square"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "missing.onnx", "x.png"], "model not found: missing.onnx"),
        (["predict", "{cls}", "nowhere.png"], "input not found: nowhere.png"),
        (["predict", "{cls}", "{broken}"], "broken.png"),
        (["predict", "{cls}", "{img}", "--set", "confidence=0.5"], "acceptable keys: top_k"),
        (["predict", "{cls}", "{img}", "--set", "top_k"], "--set expects key=value"),
        (["predict", "{cls}", "{img}", "--format", "xml"], "xml"),
    ],
)
def test_bad_input_prints_one_clear_line_and_fails(workdir, args, message):
    paths = {
        "cls": workdir / "cls.onnx",
        "broken": workdir / "broken.png",
        "img": workdir / "images" / "img0.png",
    }
    result = fovea(*[a.format(**paths) for a in args])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert message in lines[0]


def test_help_explains_every_command():
    result = fovea("--help")
    assert result.returncode == 0
    for command in ("predict", "export", "zoo"):
        assert command in result.stdout
    assert "--format" in fovea("predict", "--help").stdout


def test_predict_with_the_zoo_model_finds_the_cat(zoo_dir, tmp_path):
    model = zoo_dir / "efficientnet-lite0-imagenet.onnx"
    result = fovea("predict", model, zoo_dir / "samples" / "chelsea.jpg", "--format", "supervisely", "--draw", tmp_path)
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["image_name"] == "chelsea.jpg"
    assert "cat" in row["annotation"]["tags"][0]["name"]
    assert (tmp_path / "chelsea.png").is_file()


def test_zoo_commands(zoo_dir, tmp_path):
    listed = fovea("zoo", "list", "--zoo", zoo_dir)
    assert listed.returncode == 0 and "efficientnet-lite0-imagenet" in listed.stdout and "yes" in listed.stdout
    path = fovea("zoo", "path", "samples/chelsea.jpg", "--zoo", zoo_dir)
    assert path.returncode == 0 and path.stdout.strip().endswith("chelsea.jpg")
    missing = fovea("zoo", "path", "nothing", "--zoo", tmp_path)
    assert missing.returncode == 2 and "run `fovea zoo build`" in missing.stderr
    # --home names the folder the zoo lives in, as it does for serve, db and users
    home = tmp_path / "home"
    home.mkdir()
    (home / "zoo").symlink_to(zoo_dir)
    by_home = fovea("zoo", "path", "samples/chelsea.jpg", "--home", home)
    assert by_home.returncode == 0 and by_home.stdout.strip() == str(home / "zoo" / "samples" / "chelsea.jpg")


def test_every_command_that_writes_a_file_takes_out(workdir, tmp_path):
    for flag in ("--out", "-o", "--output"):
        written = tmp_path / f"result{flag}.json"
        result = fovea("predict", workdir / "cls.onnx", workdir / "images", flag, written)
        assert result.returncode == 0, result.stderr
        assert len(json.loads(written.read_text())) == 3


def test_db_and_users_take_home(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FOVEA_")}
    home = tmp_path / "elsewhere"
    upgraded = fovea("db", "upgrade", "--home", home, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (home / "fovea.db").is_file()
    weak = fovea("users", "create", "dave", "--home", home, "--password", "short", env=env)
    assert weak.returncode == 2 and "password" in weak.stderr.lower(), weak.stderr
    created = fovea("users", "create", "dave", "--home", home, "--password", "a-long-passphrase-9", env=env)
    assert created.returncode == 0, created.stderr
    again = fovea("users", "create", "dave", "--home", home, "--password", "a-long-passphrase-9", env=env)
    assert again.returncode == 2 and "dave" in again.stderr, again.stderr


def test_export_a_timm_architecture_with_its_card(tmp_path):
    card = tmp_path / "card.yaml"
    card.write_text("task: classification\nclasses: [a, b]\ninput: {size: [64,64]}\ndecoder: {kind: softmax}")
    out, int8 = tmp_path / "tiny.onnx", tmp_path / "tiny-int8.onnx"
    result = fovea("export", "timm:test_resnet", "--card", card, "--out", out, "--quantize", int8)
    assert result.returncode == 0, result.stderr
    assert "parity with PyTorch checked" in result.stderr
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    predicted = fovea("predict", int8, image)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)[0]["classes"][0]["name"] in ("a", "b")
    bad = fovea("export", "nowhere.module:make", "--card", card, "--out", tmp_path / "n.onnx")
    assert bad.returncode == 2 and "cannot import nowhere.module:make" in bad.stderr
