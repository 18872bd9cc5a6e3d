"""fovea.core.metrics: mAP against pycocotools on the same detections, and the other tasks' metrics on known cases."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from fovea.core.metrics import Confusion, DetectionAP, MultilabelScores, RegressionErrors, SegmentationScores


def _random_scene(rng: np.random.Generator, classes: int) -> tuple[np.ndarray, ...]:
    """Ground-truth boxes and noisy detections of them (jittered, some missed, some spurious, some mislabelled)."""
    n = int(rng.integers(0, 8))
    xy = rng.uniform(0, 300, (n, 2))
    wh = rng.uniform(8, 120, (n, 2))
    gt = np.concatenate([xy, xy + wh], axis=1)
    gt_labels = rng.integers(0, classes, n)
    kept = rng.random(n) > 0.2
    dets = gt[kept] + rng.normal(0, 6, (int(kept.sum()), 4))
    det_labels = np.where(rng.random(int(kept.sum())) < 0.9, gt_labels[kept], rng.integers(0, classes, int(kept.sum())))
    spurious = int(rng.integers(0, 4))
    xy = rng.uniform(0, 300, (spurious, 2))
    dets = np.concatenate([dets, np.concatenate([xy, xy + rng.uniform(8, 80, (spurious, 2))], axis=1)])
    det_labels = np.concatenate([det_labels, rng.integers(0, classes, spurious)])
    dets[:, 2:] = np.maximum(dets[:, 2:], dets[:, :2] + 1)
    scores = rng.random(len(dets)).round(2)  # rounded: ties happen, and must break as COCOeval breaks them
    return gt, gt_labels, dets, scores, det_labels


def _pycocotools_map(scenes: list, classes: int) -> tuple[float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for image_id, (gt, gt_labels, dets, scores, det_labels) in enumerate(scenes, start=1):
        images.append({"id": image_id, "width": 512, "height": 512})
        for box, label in zip(gt, gt_labels, strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1, "iscrowd": 0,
                "bbox": [box[0], box[1], w, h], "area": w * h,
            })  # fmt: skip
        for box, score, label in zip(dets, scores, det_labels, strict=True):
            bbox = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
            results.append({"image_id": image_id, "category_id": int(label) + 1, "bbox": bbox, "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": k + 1} for k in range(classes)],
        }
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[1]), float(evaluation.stats[0])  # AP@0.5, AP@[.5:.95] (area all, 100 dets)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_matches_pycocotools_on_the_same_detections(seed):
    pytest.importorskip("pycocotools")
    rng = np.random.default_rng(seed)
    classes = 4
    scenes = [_random_scene(rng, classes) for _ in range(40)]
    ap = DetectionAP([f"c{k}" for k in range(classes)])
    for scene in scenes:
        ap.update(*scene)
    ours = ap.result()
    map50, map50_95 = _pycocotools_map(scenes, classes)
    assert 0.2 < map50 < 0.99  # a case with misses, false positives and ties, not a trivial one
    assert ours["map50"] == pytest.approx(map50, abs=1e-9)
    assert ours["map50_95"] == pytest.approx(map50_95, abs=1e-9)
    assert len(ours["per_class"][0]["pr_curve"]) == 101


def test_map_perfect_and_empty_detections():
    ap = DetectionAP(["a", "b"])
    box = np.array([[10, 10, 50, 60]])
    ap.update(box, [0], box, [0.9], [0])
    assert ap.result()["map50"] == pytest.approx(1.0) and ap.result()["map50_95"] == pytest.approx(1.0)
    ap.update(box, [0], np.zeros((0, 4)), [], [])  # a missed object halves recall
    result = ap.result()
    assert result["map50"] == pytest.approx(51 / 101)  # precision 1 up to recall 0.5: 51 of the 101 points
    assert "ap50" not in result["per_class"][1]  # class b has no ground truth: left out, as COCO does


def test_confusion_matrix_precision_recall():
    confusion = Confusion(["cat", "dog", "fox"])
    confusion.update([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0])
    result = confusion.result()
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    cat, dog, fox = result["per_class"]
    assert (cat["precision"], cat["recall"], cat["support"]) == (0.5, 0.5, 2)
    assert (dog["precision"], dog["recall"]) == (pytest.approx(2 / 3), 1.0)
    assert (fox["precision"], fox["recall"]) == (1.0, 0.5)


def test_multilabel_scores():
    scores = MultilabelScores(["a", "b"])
    scores.update(np.array([[1, 0], [1, 1], [0, 0]]), np.array([[1, 0], [1, 0], [0, 1]]))
    result = scores.result()
    assert result["exact_match_accuracy"] == pytest.approx(1 / 3)
    a, b = result["per_class"]
    assert (a["precision"], a["recall"]) == (1.0, 1.0)
    assert (b["precision"], b["recall"]) == (0.0, 0.0)


def test_dice_and_iou():
    truth = np.zeros((10, 10), np.uint8)
    truth[:, :5] = 1  # 50 foreground pixels
    predicted = np.zeros((10, 10), np.uint8)
    predicted[:, 2:7] = 1  # 50 predicted, 30 of them right
    scores = SegmentationScores(["background", "foreground"])
    scores.update(truth, predicted)
    result = scores.result()
    assert result["dice"] == pytest.approx(2 * 30 / 100)
    assert result["iou"] == pytest.approx(30 / 70)
    assert scores.summary() == pytest.approx(0.6)
    with pytest.raises(ValueError, match="class indices"):
        scores.update(truth * 255, predicted)


def test_mae_and_rmse():
    errors = RegressionErrors(["age", "weight"])
    errors.update([[10, 60], [20, 80]], [[12, 60], [20, 76]])
    result = errors.result()
    assert result["mae"] == pytest.approx((2 + 0 + 0 + 4) / 4)
    assert result["rmse"] == pytest.approx(np.sqrt((4 + 0 + 0 + 16) / 4))
    assert result["per_output"][1]["mae"] == pytest.approx(2.0)
