"""The seed-004 hook surface: a custom BaseInferenceModel, and the generic model's own hooks."""

from pathlib import Path

import numpy as np
import pytest

import fovea
from fovea import (
    AiCOCOClassificationOutputStrategy,
    AiCOCODetectionOutputStrategy,
    AiCOCORegressionOutputStrategy,
    AiCOCOSegmentationOutputStrategy,
)
from fovea.core.card import ModelCard
from fovea.core.model import BaseInferenceModel, UploadPath, match_images
from fovea.errors import FoveaError, InputError
from tests.core.graphs import constant_outputs


class Doubler(BaseInferenceModel):
    """A custom model: reads numbers from 'files', doubles them, reports them as a regression."""

    def define_inference_network(self):
        return lambda x: x * 2

    def set_categories(self):
        return None

    def set_regressions(self):
        return [{"name": "double"}]

    def data_reader(self, files=None, **kwargs):
        return np.array([float(f.split(".")[0]) for f in files]), None

    def output_formatter(self, model_out, images, categories=None, regressions=None, **kwargs):
        return {"images": list(images), "values": model_out.tolist(), "regressions": regressions}


def test_custom_model_runs_the_hook_pipeline_in_file_order():
    images = [{"id": "b", "index": 1, "file_name": "4.txt"}, {"id": "a", "index": 0, "file_name": "3.txt"}]
    result = Doubler()(images=images, files=["3.txt", "4.txt"])
    assert result["values"] == [6.0, 8.0]
    assert [i["id"] for i in result["images"]] == ["a", "b"]
    assert result["regressions"] == [{"name": "double"}]


class Scaled(Doubler):
    """FLaVor-style hooks beside hooks that name request fields, or take them all."""

    def data_reader(self, files=None, offset=0, **kwargs):
        ordered = [str(f) for f in reversed(files)]  # plain strings: still paired by the name uploaded under
        return np.array([float(Path(f).read_text()) + offset for f in ordered]), ordered

    def preprocess(self, data):  # FLaVor's signature: no fields
        return data

    def postprocess(self, out, scale=1):
        return out * scale

    def output_formatter(self, model_out, images, categories=None, regressions=None, **kwargs):
        return {"images": list(images), "values": model_out.tolist(), "regressions": regressions, "kwargs": kwargs}


def test_request_fields_reach_the_hooks_that_take_them(tmp_path):
    (tmp_path / "0000.txt").write_text("3")
    (tmp_path / "0001.txt").write_text("4")
    files = [UploadPath(str(tmp_path / "0000.txt"), "three.txt"), UploadPath(str(tmp_path / "0001.txt"), "four.txt")]
    images = [{"id": "t", "index": 0, "file_name": "three.txt"}, {"id": "f", "index": 1, "file_name": "four.txt"}]
    result = Scaled()(images=images, files=files, offset=1, scale=10, regressions="from the client", note="n")
    assert result["values"] == [100.0, 80.0]  # (x + offset) * 2 * scale: data_reader and postprocess got theirs
    assert [i["id"] for i in result["images"]] == ["f", "t"]  # the reader's order, paired by uploaded name
    assert result["regressions"] == [{"name": "double"}]  # the hook's own arguments win over a field's
    assert result["kwargs"]["note"] == "n" and result["kwargs"]["offset"] == 1  # **kwargs takes every field


def test_upload_paths_are_paths_that_remember_the_uploaded_name(tmp_path):
    path = UploadPath(str(tmp_path / "0000.dcm"), "dir/scan 1.dcm")
    assert path == str(tmp_path / "0000.dcm") and Path(path).name == "0000.dcm"
    assert path.file_name == "dir/scan 1.dcm"


def test_several_entries_may_follow_one_volume_file_in_index_order():
    entries = [{"id": f"v{k}", "index": k, "file_name": "ct.nii.gz"} for k in (2, 0, 1)]
    assert [e["id"] for e in match_images(entries, ["ct.nii.gz"])] == ["v0", "v1", "v2"]


def test_files_must_match_image_entries_by_name():
    with pytest.raises(InputError, match=r"'x\.png' matches no entry"):
        match_images([{"id": "a", "index": 0, "file_name": "y.png"}], ["x.png"])
    entries = [{"id": "a", "index": 0, "file_name": "dir/a.dcm"}, {"id": "b", "index": 1, "file_name": "0.dcm"}]
    assert [e["id"] for e in match_images(entries, ["0.dcm", "dir/a.dcm"])] == ["b", "a"]


@pytest.mark.parametrize("uploaded", ["/tmp/upload/0.dcm", "upload/0.dcm", "scan_0.dcm", "0.DCM"])
def test_file_names_are_matched_exactly_not_by_base_name_or_suffix(uploaded):
    """The AiCOCO reference (§3): plain string equality, no base-name stripping, suffix test or case folding."""
    with pytest.raises(InputError, match="matches no entry"):
        match_images([{"id": "a", "index": 0, "file_name": "0.dcm"}], [uploaded])


def test_generic_model_exposes_categories_and_hooks(tmp_path):
    card = ModelCard(
        task="detection",
        classes=[{"name": "cat", "supercategory": "animal"}, "dog"],
        input={"size": (64, 64)},
        decoder={"kind": "boxes_labels_scores"},
    )
    outputs = {
        "boxes": np.array([[[8, 8, 32, 32]]], np.float32),
        "labels": np.array([[1]], np.float32),
        "scores": np.array([[0.9]], np.float32),
    }
    model = fovea.load(constant_outputs(tmp_path / "det.onnx", card, outputs))
    assert model.categories == [
        {"name": "cat", "supercategory_name": "animal"},
        {"name": "dog", "supercategory_name": None},
    ]
    assert model.regressions is None
    batch = model.preprocess([fovea.Image(np.zeros((128, 256, 3), np.uint8), name="wide.png")])
    assert batch.tensor.shape == (1, 3, 64, 64)
    [prediction] = model.postprocess(model.inference(batch))
    assert prediction.source == "wide.png"
    np.testing.assert_allclose(prediction.boxes, [[32, 16, 128, 64]], atol=1e-4)  # stretch: x*4, y*2


# -- FLaVor's output strategies ---------------------------------------------------------------------

ORGANS = [
    {"name": "Background", "supercategory_name": None, "display": False},
    {"name": "Liver", "supercategory_name": "Abdomen", "color": "#F58231"},
    {"name": "Tumor", "supercategory_name": "Abdomen"},
]


def series(n):
    return [
        {"id": f"s{k}", "index": k, "file_name": f"s{k}.dcm", "category_ids": None, "regressions": None}
        for k in range(n)
    ]


def test_segmentation_strategy_gives_one_object_per_label_and_one_annotation_per_slice():
    out = np.zeros((3, 3, 32, 32), np.int32)  # (classes, slices, height, width)
    out[1, :, 4:12, 4:12] = 1  # the liver on every slice: one object, three annotations
    out[2, 1, 20:24, 20:24] = 1  # two tumours (labels 1 and 2) on slice 1: two objects
    out[2, 2, 2:6, 20:24] = 2
    out[0] = 1  # a hidden background: no object
    result = AiCOCOSegmentationOutputStrategy()(model_out=out, images=series(3), categories=ORGANS)
    assert list(result) == ["images", "annotations", "categories", "regressions", "objects", "meta"]
    names = {c["id"]: c["name"] for c in result["categories"]}
    assert [names[o["category_ids"][0]] for o in result["objects"]] == ["Liver", "Tumor", "Tumor"]
    per_object = [
        [a["image_id"] for a in result["annotations"] if a["object_id"] == o["id"]] for o in result["objects"]
    ]
    assert per_object == [["s0", "s1", "s2"], ["s1"], ["s2"]]
    [liver_s0] = result["annotations"][0]["segmentation"]
    assert (min(liver_s0[0::2]), max(liver_s0[0::2]), min(liver_s0[1::2]), max(liver_s0[1::2])) == (4, 11, 4, 11)
    abdomen = next(c for c in result["categories"] if c["name"] == "Abdomen")
    assert (
        result["categories"][1]["supercategory_id"] == abdomen["id"] and result["categories"][1]["color"] == "#F58231"
    )
    assert result["categories"][0]["display"] is False


def test_classification_and_regression_strategies_follow_flavors_image_or_series_rule():
    one = AiCOCOClassificationOutputStrategy()(model_out=np.array([0, 1, 0]), images=series(1), categories=ORGANS)
    assert [c["name"] for c in one["categories"] if c["id"] in one["images"][0]["category_ids"]] == ["Liver"]
    several = AiCOCOClassificationOutputStrategy()(model_out=[0, 1, 1], images=series(3), categories=ORGANS)
    assert len(several["meta"]["category_ids"]) == 2 and all(i["category_ids"] is None for i in several["images"])
    ages = AiCOCORegressionOutputStrategy()(model_out=[42.5], images=series(1), regressions=[{"name": "age"}])
    assert ages["images"][0]["regressions"] == [{"regression_id": ages["regressions"][0]["id"], "value": 42.5}]
    with pytest.raises(FoveaError, match="needs 3 values"):
        AiCOCOClassificationOutputStrategy()(model_out=[1, 0], images=series(1), categories=ORGANS)


def test_detection_strategy_orders_boxes_by_confidence_and_drops_hidden_classes():
    out = {
        "bbox_pred": [[10, 10, 50, 40], [0, 0, 5, 5], [60, 20, 90.6, 70]],
        "cls_pred": [[0, 1, 0], [1, 0, 0], [0, 0, 1]],
        "confidence_score": [0.6, 0.99, 0.9],
    }
    result = AiCOCODetectionOutputStrategy()(model_out=out, images=series(1), categories=ORGANS)
    names = {c["id"]: c["name"] for c in result["categories"]}
    assert [(names[o["category_ids"][0]], o["confidence"]) for o in result["objects"]] == [
        ("Tumor", pytest.approx(0.9)),
        ("Liver", pytest.approx(0.6)),
    ]
    assert [a["bbox"] for a in result["annotations"]] == [[[60, 20, 91, 70]], [[10, 10, 50, 40]]]


def test_detection_strategy_takes_an_image_with_nothing_found():
    empty = {"bbox_pred": [], "cls_pred": [], "confidence_score": []}
    result = AiCOCODetectionOutputStrategy()(model_out=empty, images=series(1), categories=ORGANS)
    assert result["annotations"] == [] and result["objects"] == [] and result["images"][0]["id"] == "s0"
