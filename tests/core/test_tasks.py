"""Decoders end to end through the real preprocessing and ONNX Runtime, on graphs with known outputs."""

import numpy as np
import pytest

import fovea
from fovea.core.card import ModelCard
from fovea.errors import InputError
from tests.core.graphs import bright_pixels_segmenter, constant_outputs

# The object in the ORIGINAL 640x480 image, and where it lands in a 320x320 network input (worked out by
# hand in test_geometry.py).
BOX = [100, 50, 300, 200]
NETWORK_BOX = {
    "stretch": [50, 50 * 2 / 3, 150, 200 * 2 / 3],
    "letterbox": [50, 65, 150, 140],
    "center_crop": [20 * 2 / 3, 50 * 2 / 3, 220 * 2 / 3, 200 * 2 / 3],
}
IMAGE = np.zeros((480, 640, 3), np.uint8)
CLASSES = ["cat", "dog", "bird"]


def card(task, decoder, resize="stretch", **decoder_options):
    return ModelCard(
        task=task,
        classes=CLASSES if task != "regression" else (),
        regressions=("age", "weight") if task == "regression" else (),
        input={"size": (320, 320), "resize": resize, "crop_pct": 1.0},
        decoder={"kind": decoder, **decoder_options},
    )


def cxcywh(box):
    x1, y1, x2, y2 = box
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def yolov8_output(box, label, score):
    out = np.zeros((1, 4 + len(CLASSES), 3), np.float32)
    out[0, :4, 0] = cxcywh(box)
    out[0, 4 + label, 0] = score
    out[0, :4, 1] = cxcywh([0, 0, 10, 10])  # a second anchor under the confidence threshold
    out[0, 4 + 2, 1] = 0.1
    out[0, :4, 2] = cxcywh([box[0] + 2, box[1] + 2, box[2] + 2, box[3] + 2])  # a duplicate for NMS
    out[0, 4 + label, 2] = score - 0.1
    return {"output0": out}


def yolov5_output(box, label, score):
    out = np.zeros((1, 2, 5 + len(CLASSES)), np.float32)
    out[0, 0, :4] = cxcywh(box)
    out[0, 0, 4] = 0.9  # objectness
    out[0, 0, 5 + label] = score / 0.9
    out[0, 1, :4] = cxcywh([0, 0, 5, 5])
    out[0, 1, 4] = 0.05
    out[0, 1, 5] = 1.0
    return {"output0": out}


def boxes_scores_output(box, label, score):
    scores = np.zeros((1, 2, len(CLASSES)), np.float32)
    scores[0, 0, label] = score
    scores[0, 1, 0] = 0.01
    boxes = np.array([[box, [0, 0, 1, 1]]], np.float32) / 320  # normalised xyxy
    return {"boxes": boxes, "scores": scores}


def boxes_labels_scores_output(box, label, score):
    x1, y1, x2, y2 = box
    return {
        "boxes": np.array([[[x1, y1, x2 - x1, y2 - y1]]], np.float32),  # xywh
        "labels": np.array([[label]], np.float32),
        "scores": np.array([[score]], np.float32),
    }


DECODERS = {
    "yolov8": (yolov8_output, {}),
    "yolov5": (yolov5_output, {}),
    "boxes_scores": (boxes_scores_output, {"normalized_boxes": True}),
    "boxes_labels_scores": (boxes_labels_scores_output, {"box_format": "xywh"}),
}


@pytest.mark.parametrize("mode", list(NETWORK_BOX))
@pytest.mark.parametrize("decoder", list(DECODERS))
def test_detection_box_lands_on_the_object_in_original_pixels(tmp_path, decoder, mode):
    make_outputs, options = DECODERS[decoder]
    model_card = card("detection", decoder, mode, **options)
    path = constant_outputs(tmp_path / "det.onnx", model_card, make_outputs(NETWORK_BOX[mode], 1, 0.8))
    prediction = fovea.load(path).predict(IMAGE)
    assert prediction.size == (480, 640)
    assert prediction.names == ["dog"]
    np.testing.assert_allclose(prediction.boxes[0], BOX, atol=1.0)
    assert prediction.scores[0] == pytest.approx(0.8, abs=1e-5)


def test_detection_settings_whitelist_threshold_and_max_det(tmp_path):
    model_card = card("detection", "yolov8")
    out = np.zeros((1, 7, 4), np.float32)
    for anchor, (box, label, score) in enumerate(
        [
            ([10, 10, 50, 50], 0, 0.9),
            ([100, 100, 150, 150], 1, 0.7),
            ([200, 200, 250, 250], 2, 0.5),
            ([5, 5, 8, 8], 2, 0.2),
        ]
    ):
        out[0, :4, anchor] = cxcywh(box)
        out[0, 4 + label, anchor] = score
    model = fovea.load(constant_outputs(tmp_path / "det.onnx", model_card, {"output0": out}))
    assert model.predict(IMAGE).names == ["cat", "dog", "bird"]
    assert model.predict(IMAGE, {"classes": ["bird", "dog"]}).names == ["dog", "bird"]
    assert model.predict(IMAGE, {"conf_thres": 0.6}).names == ["cat", "dog"]
    assert model.predict(IMAGE, {"max_det": 1}).names == ["cat"]
    assert len(model.predict(IMAGE, {"conf_thres": 0.1})) == 4
    with pytest.raises(InputError, match="acceptable keys: classes, conf_thres, iou_thres, max_det"):
        model.predict(IMAGE, {"confidence": 0.5})
    with pytest.raises(InputError, match="iou_thres"):
        model.predict(IMAGE, {"iou_thres": 3})


def test_nms_is_class_aware(tmp_path):
    model_card = card("detection", "yolov8")
    out = np.zeros((1, 7, 3), np.float32)
    for anchor, (label, score) in enumerate([(0, 0.9), (0, 0.8), (1, 0.7)]):
        out[0, :4, anchor] = cxcywh([100, 100, 200, 200])
        out[0, 4 + label, anchor] = score
    model = fovea.load(constant_outputs(tmp_path / "det.onnx", model_card, {"output0": out}))
    prediction = model.predict(IMAGE)
    assert prediction.names == ["cat", "dog"]  # the second cat overlaps the first; the dog is another class


def test_classification_top_k_softmax(tmp_path):
    logits = np.array([[1.0, 3.0, 2.0]], np.float32)
    model = fovea.load(constant_outputs(tmp_path / "cls.onnx", card("classification", "softmax"), {"logits": logits}))
    prediction = model.predict(IMAGE, {"top_k": 2})
    assert prediction.names == ["dog", "bird"]
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(prediction.scores, expected[[1, 2]], rtol=1e-5)
    np.testing.assert_allclose(prediction.probabilities.sum(), 1.0, rtol=1e-5)


def test_multilabel_threshold(tmp_path):
    logits = np.array([[2.0, -3.0, 0.5]], np.float32)  # sigmoid: 0.88, 0.05, 0.62
    model = fovea.load(constant_outputs(tmp_path / "ml.onnx", card("multilabel", "sigmoid"), {"logits": logits}))
    assert model.predict(IMAGE).names == ["cat", "bird"]
    assert model.predict(IMAGE, {"threshold": 0.7}).names == ["cat"]


def test_regression_named_outputs(tmp_path):
    model_card = card("regression", "identity")
    values = {"age": np.array([[42.5]], np.float32), "weight": np.array([[70.25]], np.float32)}
    model = fovea.load(constant_outputs(tmp_path / "reg.onnx", model_card, values))
    assert model.predict(IMAGE).values == {"age": 42.5, "weight": 70.25}


@pytest.mark.parametrize("mode", list(NETWORK_BOX))
def test_segmentation_mask_lands_on_the_right_pixels(tmp_path, mode):
    model_card = ModelCard(
        task="segmentation",
        classes=["background", "bright"],
        input={"size": (320, 320), "resize": mode, "crop_pct": 1.0},
        decoder={"kind": "argmax", "background_index": 0},
    )
    model = fovea.load(bright_pixels_segmenter(tmp_path / "seg.onnx", model_card))
    image = IMAGE.copy()
    x1, y1, x2, y2 = BOX
    image[y1:y2, x1:x2, 0] = 255
    prediction = model.predict(image)
    assert prediction.names == ["bright"]
    mask = prediction.masks[0]
    assert mask.shape == (480, 640)
    truth = np.zeros((480, 640), bool)
    truth[y1:y2, x1:x2] = True
    # Everything inside (2 px in from the edge) is found, nothing outside (2 px out) is.
    assert mask[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].all()
    outside = ~np.pad(np.ones((y2 - y1 + 4, x2 - x1 + 4), bool), ((y1 - 2, 480 - y2 - 2), (x1 - 2, 640 - x2 - 2)))
    assert not mask[outside].any()
    assert abs(int(mask.sum()) - int(truth.sum())) < 0.03 * truth.sum()


def test_segmentation_sigmoid_threshold_and_batch(tmp_path):
    model_card = ModelCard(
        task="segmentation",
        classes=["background", "bright"],
        input={"size": (64, 64)},
        decoder={"kind": "sigmoid_threshold"},
        settings={"classes": ["bright"]},
    )
    model = fovea.load(bright_pixels_segmenter(tmp_path / "seg.onnx", model_card))
    dark = np.zeros((100, 80, 3), np.uint8)
    half = dark.copy()
    half[:, 40:, 0] = 255
    predictions = model.predict_batch([dark, half, half])
    assert [p.names for p in predictions] == [[], ["bright"], ["bright"]]
    assert predictions[1].masks[0][:, 42:].all() and not predictions[1].masks[0][:, :38].any()


def test_hidden_classes_are_never_reported(tmp_path):
    model_card = ModelCard(
        task="segmentation",
        classes=[{"name": "background", "display": False}, "bright"],
        input={"size": (64, 64)},
        decoder={"kind": "argmax"},
    )
    model = fovea.load(bright_pixels_segmenter(tmp_path / "seg.onnx", model_card))
    half = np.zeros((100, 80, 3), np.uint8)
    half[:, 40:, 0] = 255
    assert model.predict(half).names == ["bright"]
