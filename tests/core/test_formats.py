"""Result formats against the field rules of their references."""

import json
import re

import numpy as np
import pytest

from fovea.core.card import ModelCard
from fovea.core.formats import (
    decode_bitmap,
    encode_bitmap,
    format_predictions,
    from_canonical,
    rle_decode,
    supervisely_project_meta,
    to_aicoco,
    to_canonical,
    to_coco_results,
    to_deephealth_value,
    to_supervisely_annotation,
)
from fovea.core.predictions import Prediction
from fovea.errors import InputError

NANOID = re.compile(r"^[A-Za-z0-9_-]{21}$")
DET = ModelCard(
    task="detection",
    classes=[
        {"name": "RBC", "supercategory": "Blood cell", "color": "#E6194B"},
        {"name": "WBC", "supercategory": "Blood cell"},
        "Platelets",
    ],
    decoder={"kind": "yolov8"},
)
SEG = ModelCard(
    task="segmentation",
    classes=[{"name": "Background", "display": False}, "Liver", "Tumor"],
    decoder={"kind": "argmax"},
)
CLS = ModelCard(task="classification", classes=["cat", "dog", "bird"], decoder={"kind": "softmax"})
MULTI = ModelCard(task="multilabel", classes=["cat", "dog", "bird"], decoder={"kind": "sigmoid"})
REG = ModelCard(task="regression", regressions=["age", "weight"], decoder={"kind": "identity"})


def detection():
    return Prediction(
        task="detection",
        size=(480, 640),
        class_names=DET.class_names,
        boxes=np.array([[165.4, 168.2, 318.6, 324.0], [102.0, 66.0, 159.0, 148.0]], np.float32),
        labels=np.array([1, 0]),
        scores=np.array([0.888, 0.817], np.float32),
    )


def segmentation(depth=None):
    size = (40, 50) if depth is None else (depth, 40, 50)
    liver = np.zeros(size, bool)
    tumor = np.zeros(size, bool)
    liver[..., 5:20, 5:25] = True
    tumor[..., 25:30, 30:35] = True
    tumor[..., 32:36, 40:45] = True  # a second blob of the same class
    if depth:
        tumor[0] = False  # no tumour on the first slice
    return Prediction(
        task="segmentation",
        size=size,
        class_names=SEG.class_names,
        labels=np.array([1, 2]),
        scores=np.array([0.9, 0.8], np.float32),
        masks=np.stack([liver, tumor]),
    )


def entries(n, file_name="img.png"):
    return [
        {
            "id": f"img-{i}",
            "index": i,
            "file_name": f"{i}-{file_name}",
            "category_ids": None,
            "regressions": None,
            "patient": "P-1",
        }
        for i in range(n)
    ]


def check_aicoco(out, card):
    assert list(out) == ["images", "annotations", "categories", "regressions", "objects", "meta"]
    ids = [c["id"] for c in out["categories"]] + [r["id"] for r in out["regressions"]]
    ids += [o["id"] for o in out["objects"]] + [a["id"] for a in out["annotations"]]
    assert all(NANOID.match(i) for i in ids) and len(set(ids)) == len(ids)
    image_ids = {i["id"] for i in out["images"]}
    object_ids = {o["id"] for o in out["objects"]}
    category_ids = {c["id"] for c in out["categories"]}
    assert [c["name"] for c in out["categories"][: len(card.classes)]] == list(card.class_names)
    for annotation in out["annotations"]:
        assert set(annotation) == {"id", "image_id", "object_id", "iscrowd", "bbox", "segmentation"}
        assert annotation["image_id"] in image_ids and annotation["object_id"] in object_ids
        assert annotation["iscrowd"] == 0
        assert (annotation["bbox"] is None) != (annotation["segmentation"] is None)
        if annotation["bbox"] is not None:
            [[x1, y1, x2, y2]] = annotation["bbox"]
            assert all(isinstance(v, int) for v in (x1, y1, x2, y2)) and x1 <= x2 and y1 <= y2
        else:
            for polygon in annotation["segmentation"]:
                assert all(isinstance(v, int) for v in polygon) and len(polygon) % 2 == 0
    for obj in out["objects"]:
        assert all(c in category_ids for c in obj["category_ids"])
    for image in out["images"]:
        assert image["patient"] == "P-1"  # extra keys are echoed
        for key in ("category_ids", "regressions"):
            assert key in image


def test_aicoco_detection_follows_the_worked_example():
    out = to_aicoco([detection()], entries(1), DET)
    check_aicoco(out, DET)
    rbc, wbc, platelets, blood = out["categories"]
    assert blood == {"id": blood["id"], "name": "Blood cell", "supercategory_id": None}
    assert rbc["supercategory_id"] == wbc["supercategory_id"] == blood["id"] and platelets["supercategory_id"] is None
    assert rbc["color"] == "#E6194B" and "color" not in wbc and rbc["display"] is True
    assert [o["category_ids"] for o in out["objects"]] == [[wbc["id"]], [rbc["id"]]]
    assert [o["confidence"] for o in out["objects"]] == pytest.approx([0.888, 0.817])
    assert out["annotations"][0]["bbox"] == [[165, 168, 319, 324]]
    assert out["meta"] == {"category_ids": None, "regressions": None}


def test_aicoco_classification_multilabel_and_regression_go_on_the_image():
    cls = Prediction(
        task="classification",
        size=(10, 10),
        class_names=CLS.class_names,
        labels=np.array([2, 0]),
        scores=np.array([0.7, 0.2]),
    )
    out = to_aicoco([cls], entries(1), CLS)
    check_aicoco(out, CLS)
    assert out["images"][0]["category_ids"] == [out["categories"][2]["id"]]
    multi = Prediction(
        task="multilabel",
        size=(10, 10),
        class_names=MULTI.class_names,
        labels=np.array([2, 0]),
        scores=np.array([0.9, 0.6]),
    )
    out = to_aicoco([multi], entries(1), MULTI)
    assert out["images"][0]["category_ids"] == [
        out["categories"][0]["id"],
        out["categories"][2]["id"],
    ]  # class order
    reg = Prediction(task="regression", size=(10, 10), values={"age": 42.5, "weight": 70.0})
    out = to_aicoco([reg], entries(1), REG)
    check_aicoco(out, REG)
    assert out["images"][0]["regressions"] == [
        {"regression_id": out["regressions"][0]["id"], "value": 42.5},
        {"regression_id": out["regressions"][1]["id"], "value": 70.0},
    ]
    with pytest.raises(ValueError, match="non-finite"):
        to_aicoco(
            [Prediction(task="regression", size=(1, 1), values={"age": float("nan"), "weight": 1.0})],
            entries(1),
            REG,
        )


def test_aicoco_segmentation_2d_one_object_per_class_and_all_contours():
    out = to_aicoco([segmentation()], entries(1), SEG)
    check_aicoco(out, SEG)
    assert out["categories"][0]["display"] is False
    assert len(out["objects"]) == 2 and all("confidence" not in o for o in out["objects"])
    liver, tumor = out["annotations"]
    assert len(liver["segmentation"]) == 1 and len(tumor["segmentation"]) == 2
    xs, ys = liver["segmentation"][0][0::2], liver["segmentation"][0][1::2]
    assert (min(xs), min(ys), max(xs), max(ys)) == (5, 5, 24, 19)


def test_aicoco_3d_segmentation_one_annotation_per_slice():
    out = to_aicoco([segmentation(depth=3)], entries(3, "s.dcm"), SEG)
    check_aicoco(out, SEG)
    liver, tumor = out["objects"]
    by_object = {
        o["id"]: [a["image_id"] for a in out["annotations"] if a["object_id"] == o["id"]] for o in (liver, tumor)
    }
    assert by_object[liver["id"]] == ["img-0", "img-1", "img-2"]
    assert by_object[tumor["id"]] == ["img-1", "img-2"]


def test_supervisely_rectangle_corners_are_inclusive():
    annotation = to_supervisely_annotation(detection(), DET)
    assert annotation["size"] == {"height": 480, "width": 640}
    first = annotation["objects"][0]
    assert first["classTitle"] == "WBC" and first["geometryType"] == "rectangle"
    assert first["points"] == {"exterior": [[165, 168], [318, 323]], "interior": []}
    assert first["tags"] == [{"name": "confidence", "value": pytest.approx(0.888)}]


@pytest.mark.parametrize("offset", [(0, 0), (3, 7), (17, 1)])
def test_supervisely_bitmap_round_trips(offset):
    rng = np.random.default_rng(sum(offset))
    mask = np.zeros((31, 45), bool)
    y, x = offset
    mask[y : y + 9, x : x + 13] = rng.random((9, 13)) > 0.4
    mask[y, x] = True
    data, origin = encode_bitmap(mask)
    assert origin == [int(np.flatnonzero(mask.any(0))[0]), int(np.flatnonzero(mask.any(1))[0])]
    np.testing.assert_array_equal(decode_bitmap(data, origin, mask.shape), mask)
    with pytest.raises(ValueError, match="empty"):
        encode_bitmap(np.zeros((3, 3), bool))


def test_supervisely_segmentation_and_meta():
    annotation = to_supervisely_annotation(segmentation(), SEG)
    assert [o["classTitle"] for o in annotation["objects"]] == ["Liver", "Tumor"]
    liver = annotation["objects"][0]["bitmap"]
    np.testing.assert_array_equal(decode_bitmap(liver["data"], liver["origin"], (40, 50)), segmentation().masks[0])
    meta = supervisely_project_meta(SEG)
    assert [c["title"] for c in meta["classes"]] == ["Liver", "Tumor"]  # hidden background not listed
    assert all(c["shape"] == "bitmap" and re.match(r"^#[0-9A-F]{6}$", c["color"]) for c in meta["classes"])
    assert meta["tags"][0]["name"] == "confidence"
    cls_meta = supervisely_project_meta(CLS)
    assert cls_meta["classes"] == [] and [t["name"] for t in cls_meta["tags"]] == [
        "confidence",
        "cat",
        "dog",
        "bird",
    ]


def test_coco_results_and_rle():
    rows = to_coco_results([detection()], [7], DET)
    assert rows[0] == {
        "image_id": 7,
        "category_id": 2,
        "bbox": pytest.approx([165.4, 168.2, 153.2, 155.8], abs=1e-3),
        "score": pytest.approx(0.888),
    }
    seg_rows = to_coco_results([segmentation()], [3], SEG)
    np.testing.assert_array_equal(rle_decode(seg_rows[1]["segmentation"]), segmentation().masks[1])


def test_canonical_round_trip():
    for prediction in (detection(), segmentation(), segmentation(depth=2)):
        again = from_canonical(to_canonical(prediction), prediction.class_names)
        np.testing.assert_array_equal(again.labels, prediction.labels)
        if prediction.masks is not None:
            np.testing.assert_array_equal(again.masks, prediction.masks)
        else:
            np.testing.assert_allclose(again.boxes, prediction.boxes, atol=0.01)


def test_deephealth_values():
    cls = Prediction(task="classification", size=(8, 8), probabilities=np.array([0.1, 0.7, 0.2]))
    assert json.loads(to_deephealth_value(cls)) == [pytest.approx([0.1, 0.7, 0.2])]
    rows = json.loads(to_deephealth_value(detection()))
    assert rows[0] == pytest.approx([165.4, 168.2, 318.6, 324.0, 0.888, 1], abs=1e-3)
    assert to_deephealth_value(segmentation(), "http://x/media/p/0.png") == "http://x/media/p/0.png"


def test_unknown_format_names_the_known_ones():
    with pytest.raises(InputError, match="json, aicoco, supervisely, coco"):
        format_predictions([detection()], "xml", DET)
