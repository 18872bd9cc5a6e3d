"""`fovea evaluate` as a user runs it: a real subprocess over real datasets, scored numbers and report files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import fovea
from fovea.core.card import ModelCard
from fovea.datasets import Sample, write_dataset_yaml
from tests.core.graphs import bright_pixels_segmenter, constant_outputs
from tests.test_cli import fovea as run_cli


@pytest.mark.slow
def test_lenet_scores_well_above_chance_on_the_digits_test_split(zoo_dir, tmp_path):
    out = tmp_path / "report"
    result = run_cli("evaluate", zoo_dir / "digits-lenet.onnx", zoo_dir / "digits" / "digits.yml", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "precision" in result.stdout
    report = json.loads((out / "metrics.json").read_text())
    metrics = report["metrics"]
    test_ids = len(fovea.datasets.load_dataset_yaml(zoo_dir / "digits" / "digits.yml").ids("test"))
    assert report["split"] == "test" and metrics["images"] == test_ids
    assert metrics["accuracy"] > 0.9  # chance is 0.1
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == test_ids
    assert np.trace(matrix) / test_ids == pytest.approx(metrics["accuracy"])
    picture = Image.open(out / "confusion_matrix.png")
    assert picture.format == "PNG" and min(picture.size) > 400

    # The same command on untrained weights: the number is measured, not assumed.
    untrained = run_cli("evaluate", zoo_dir / "lenet-random.onnx", zoo_dir / "digits" / "digits.yml", "--out", out)
    assert untrained.returncode == 0, untrained.stderr
    assert json.loads((out / "metrics.json").read_text())["metrics"]["accuracy"] < 0.5


def test_segmentation_dice_and_iou(tmp_path):
    card = ModelCard(
        task="segmentation",
        classes=["background", "bright"],
        input={"size": (64, 64)},
        decoder={"kind": "argmax", "background_index": 0},
    )
    model = bright_pixels_segmenter(tmp_path / "seg.onnx", card)
    samples = []
    for i in range(2):
        pixels = np.zeros((64, 64, 3), np.uint8)
        pixels[10:30, 10:30, 0] = 255  # the model finds these 400 pixels
        mask = np.zeros((64, 64), np.uint8)
        mask[10:30, 10 : 30 + 10 * i] = 255  # the truth: the same square, then one 200 pixels wider
        Image.fromarray(pixels).save(tmp_path / f"img{i}.png")
        Image.fromarray(mask).save(tmp_path / f"mask{i}.png")
        samples.append(Sample(location=f"img{i}.png", label=f"mask{i}.png"))
    dataset = write_dataset_yaml(tmp_path / "seg.yml", "seg", [], samples)
    result = run_cli("evaluate", model, dataset, "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())["metrics"]
    # Pooled: 800 pixels found, 1000 true, 800 in common.
    assert metrics["dice"] == pytest.approx(2 * 800 / 1800)
    assert metrics["iou"] == pytest.approx(800 / 1000)
    assert metrics["mean_image_dice"] == pytest.approx((1.0 + 2 * 400 / 1000) / 2)


def test_regression_mae_and_rmse(tmp_path):
    card = ModelCard(name="body", task="regression", regressions=("age", "weight"), decoder={"kind": "identity"})
    values = {"age": np.array([[40.0]], np.float32), "weight": np.array([[70.0]], np.float32)}
    model = constant_outputs(tmp_path / "body.onnx", card, values)
    truths = [{"age": 42, "weight": 70}, {"age": 40, "weight": 64}]
    for i in range(2):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / f"p{i}.png")
    samples = [Sample(f"p{i}.png", values=truth) for i, truth in enumerate(truths)]
    dataset = write_dataset_yaml(tmp_path / "body.yml", "body", [], samples, features=["weight", "age"])
    result = run_cli("evaluate", model, dataset, "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())["metrics"]
    assert metrics["mae"] == pytest.approx((2 + 0 + 0 + 6) / 4)
    assert metrics["rmse"] == pytest.approx(np.sqrt((4 + 36) / 4))
    assert [row["output"] for row in metrics["per_output"]] == ["weight", "age"]  # the dataset's features, by name


def test_detector_on_coco_annotations_matches_pycocotools(tmp_path):
    pytest.importorskip("pycocotools")
    from tests.core.test_metrics import _pycocotools_map

    classes = ["cat", "dog"]
    card = ModelCard(
        task="detection",
        classes=classes,
        input={"size": (64, 64)},
        decoder={"kind": "boxes_scores", "normalized_boxes": True},
    )
    # The same three detections on every image (normalised xyxy), scored per class.
    boxes = np.array([[[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9], [0.1, 0.6, 0.3, 0.9]]], np.float32)
    scores = np.array([[[0.9, 0.05], [0.1, 0.8], [0.7, 0.1]]], np.float32)
    model = constant_outputs(tmp_path / "det.onnx", card, {"boxes": boxes, "scores": scores})
    truths = [  # per image: (x1, y1, x2, y2, class) in the 128x128 originals
        [(13, 13, 64, 64, 0), (64, 64, 115, 115, 1)],
        [(20, 20, 70, 70, 0)],
        [(64, 64, 115, 115, 0), (10, 80, 40, 115, 0)],
    ]
    images, annotations = [], []
    for i, truth in enumerate(truths, start=1):
        Image.fromarray(np.zeros((128, 128, 3), np.uint8)).save(tmp_path / f"im{i}.png")
        images.append({"id": i, "file_name": f"im{i}.png", "width": 128, "height": 128})
        for x1, y1, x2, y2, k in truth:
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": k + 1, "iscrowd": 0,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})  # fmt: skip
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (tmp_path / "instances.json").write_text(json.dumps(coco))

    result = run_cli("evaluate", model, tmp_path / "instances.json", "--out", tmp_path / "report")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())["metrics"]
    assert Image.open(tmp_path / "report" / "pr_curve.png").format == "PNG"

    net = fovea.load(model)
    scenes = []
    for i, truth in enumerate(truths, start=1):
        p = net.predict(tmp_path / f"im{i}.png")
        gt = np.array([t[:4] for t in truth], np.float64)
        scenes.append((gt, np.array([t[4] for t in truth]), p.boxes.astype(np.float64), p.scores, p.labels))
    map50, map50_95 = _pycocotools_map(scenes, len(classes))
    assert 0 < map50 < 1
    assert metrics["map50"] == pytest.approx(map50, abs=1e-9)
    assert metrics["map50_95"] == pytest.approx(map50_95, abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("split", "message"),
    [("nothing", "has no images in its 'nothing' split"), ("test", "")],
)
def test_bad_input_is_one_clear_line(zoo_dir, tmp_path, split, message):
    dataset = zoo_dir / "digits" / "digits.yml"
    if not message:  # a detector on a DeepHealth YAML: the format has no boxes to score it against
        card = ModelCard(task="detection", classes=["a"], input={"size": (8, 8)}, decoder={"kind": "yolov8"})
        model = constant_outputs(tmp_path / "det.onnx", card, {"out": np.zeros((1, 5, 1), np.float32)})
        message = "DeepHealth datasets hold no boxes"
    else:
        model = zoo_dir / "digits-lenet.onnx"
    result = run_cli("evaluate", model, dataset, "--split", split, "--out", tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
