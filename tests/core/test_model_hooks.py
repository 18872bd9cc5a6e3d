"""The seed-004 hook surface: a custom BaseInferenceModel, and the generic model's own hooks."""

import numpy as np
import pytest

import fovea
from fovea.core.card import ModelCard
from fovea.core.model import BaseInferenceModel, match_images
from fovea.errors import InputError
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
