"""Export to ONNX and TorchScript with parity checks, and INT8 quantisation."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import fovea
from fovea.core.card import ModelCard, load_card
from fovea.core.export import quantize_dynamic, sample_input, to_onnx, to_torchscript
from fovea.errors import ExportError

CARD = ModelCard(
    name="tiny",
    task="classification",
    classes=["a", "b", "c"],
    input={"size": (16, 16)},
    decoder={"kind": "softmax"},
)


def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
    )


class BakesItsInput(nn.Module):
    """Eager code that reads a tensor value into Python: tracing freezes it into a constant."""

    def forward(self, x):
        return x.mean(dim=(2, 3)) * float(x.mean())


def test_export_embeds_the_card_and_runs_any_batch(tmp_path):
    path = to_onnx(tiny_cnn(), sample_input(CARD), CARD, tmp_path / "tiny.onnx")
    card = load_card(path)
    assert card.input.name == "input" and card.decoder.outputs == ("output",)
    assert card.class_names == ("a", "b", "c")
    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    loaded = fovea.load(path)
    images = [np.random.default_rng(i).integers(0, 255, (20, 30, 3), dtype=np.uint8) for i in range(3)]
    assert len(loaded.predict_batch(images, batch_size=3)) == 3


def test_broken_export_fails_its_parity_check_and_leaves_no_file(tmp_path):
    path = tmp_path / "broken.onnx"
    with pytest.raises(ExportError, match="differs from PyTorch"):
        to_onnx(BakesItsInput(), sample_input(CARD), CARD, path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_torchscript_export(tmp_path):
    path = to_torchscript(tiny_cnn(), sample_input(CARD), tmp_path / "tiny.pt")
    x = torch.from_numpy(sample_input(CARD, batch=2, seed=3))
    np.testing.assert_allclose(torch.jit.load(str(path))(x).detach().numpy(), tiny_cnn()(x).detach().numpy(), atol=1e-5)


def test_quantization_reports_size_and_agreement(tmp_path):
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 512), nn.ReLU(), nn.Linear(512, 3))
    path = to_onnx(wide, sample_input(CARD), CARD, tmp_path / "wide.onnx")
    samples = [sample_input(CARD, batch=8, seed=s) for s in range(4)]
    report = quantize_dynamic(path, tmp_path / "wide-int8.onnx", samples=samples)
    assert report.int8_bytes < report.float_bytes / 2
    assert report.top1_agreement >= 0.8 and report.max_abs_diff < 0.5
    assert load_card(tmp_path / "wide-int8.onnx") == load_card(path)
    assert "MB" in str(report)


def test_opset_must_be_recent(tmp_path):
    with pytest.raises(ExportError, match="opset"):
        to_onnx(tiny_cnn(), sample_input(CARD), CARD, tmp_path / "old.onnx", opset=13)
