"""Export to ONNX and TorchScript with parity checks, and INT8 quantisation."""

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from fovea.core.card import ModelCard, load_card
from fovea.core.export import build_module, quantize_dynamic, sample_input, timm_card, to_onnx, to_torchscript
from fovea.errors import ExportError

CARD = ModelCard(
    name="tiny",
    task="classification",
    classes=["a", "b", "c"],
    input={"size": (16, 16)},
    decoder={"kind": "softmax"},
)


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
    )


class BakesItsInput(nn.Module):
    """Reads a tensor value into Python: eager code recomputes it, a trace freezes the sample's value."""

    def forward(self, x):
        return x.mean(dim=(2, 3)) * float(x.mean())


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = tiny_cnn()

    def forward(self, x):
        logits = self.body(x)
        return logits, logits.softmax(1)


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def eager(module, x):
    with torch.no_grad():
        return module.eval()(torch.from_numpy(x)).numpy()


def test_export_embeds_the_card_and_runs_batches_of_one_and_three(tmp_path):
    module = tiny_cnn().train()
    path = to_onnx(module, sample_input(CARD), CARD, tmp_path / "tiny.onnx")
    assert module.training  # exported in eval mode, handed back as it came
    card = load_card(path)
    assert card.input.name == "input" and card.decoder.outputs == ("output",)
    assert card.class_names == ("a", "b", "c") and card.input.size == (16, 16)
    model = onnx.load(str(path))
    assert model.opset_import[0].version == 17
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == ["batch", 3, 16, 16]
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for batch in (1, 3):
        x = sample_input(CARD, batch=batch, seed=batch)
        (out,) = run_onnx(path, x)
        assert out.shape == (batch, 3)
        np.testing.assert_allclose(out, eager(tiny_cnn(), x), atol=1e-5)


def test_tensor_names_come_from_the_card_or_the_arguments(tmp_path):
    named = ModelCard.model_validate({**CARD.model_dump(), "input": {**CARD.input.model_dump(), "name": "images"}})
    path = to_onnx(tiny_cnn(), sample_input(CARD), named, tmp_path / "named.onnx", output_names=["scores"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"] and [o.name for o in session.get_outputs()] == [
        "scores"
    ]
    assert load_card(path).decoder.outputs == ("scores",)
    with pytest.raises(ExportError, match="contradicts the card"):
        to_onnx(tiny_cnn(), sample_input(CARD), named, tmp_path / "clash.onnx", input_name="pixels")
    assert not (tmp_path / "clash.onnx").exists()


def test_several_outputs_get_numbered_names_and_all_are_checked(tmp_path):
    path = to_onnx(TwoHeads(), sample_input(CARD), CARD, tmp_path / "two.onnx")
    assert load_card(path).decoder.outputs == ("output0", "output1")
    logits, probabilities = run_onnx(path, sample_input(CARD, batch=2))
    np.testing.assert_allclose(probabilities.sum(1), [1, 1], atol=1e-6)
    np.testing.assert_allclose(probabilities, torch.from_numpy(logits).softmax(1).numpy(), atol=1e-6)


def test_broken_export_fails_its_parity_check_and_leaves_no_file(tmp_path):
    path = tmp_path / "broken.onnx"
    with pytest.raises(ExportError, match=r"differs from PyTorch by up to \d") as error:
        to_onnx(BakesItsInput(), sample_input(CARD), CARD, path)
    assert "tracing warned" in str(error.value)  # the message says why the trace went wrong
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary sibling


def test_a_module_that_fails_or_returns_no_tensor_fails_cleanly(tmp_path):
    class Raises(nn.Module):
        def forward(self, x):
            return x.reshape(-1, 7)  # 3*16*16 is not a multiple of 7

    class CountsItems(nn.Module):
        def forward(self, x):
            return len(x)

    with pytest.raises(ExportError, match=r"fails on a batch of shape \(1, 3, 16, 16\): RuntimeError"):
        to_onnx(Raises(), sample_input(CARD), CARD, tmp_path / "raises.onnx")
    with pytest.raises(ExportError, match="must return a tensor"):
        to_onnx(CountsItems(), sample_input(CARD), CARD, tmp_path / "counts.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_sample_must_fit_the_card_and_the_opset_be_recent(tmp_path):
    with pytest.raises(ExportError, match="does not match the card"):
        to_onnx(tiny_cnn(), np.zeros((1, 3, 32, 32), np.float32), CARD, tmp_path / "a.onnx")
    with pytest.raises(ExportError, match="opset"):
        to_onnx(tiny_cnn(), sample_input(CARD), CARD, tmp_path / "b.onnx", opset=13)
    assert list(tmp_path.iterdir()) == []


def test_torchscript_export_agrees_after_reloading(tmp_path):
    path = to_torchscript(tiny_cnn(), torch.from_numpy(sample_input(CARD)), tmp_path / "tiny.pt")
    x = sample_input(CARD, batch=3, seed=3)
    with torch.no_grad():
        reloaded = torch.jit.load(str(path))(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(reloaded, eager(tiny_cnn(), x), atol=1e-6)
    with pytest.raises(ExportError, match="TorchScript output 0 differs"):
        to_torchscript(BakesItsInput(), sample_input(CARD), tmp_path / "broken.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]


def test_quantization_reports_size_agreement_and_scores(tmp_path):
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 512), nn.ReLU(), nn.Linear(512, 3))
    path = to_onnx(wide, sample_input(CARD), CARD, tmp_path / "wide.onnx")
    samples = [sample_input(CARD, batch=8, seed=s) for s in range(4)]
    reference = np.concatenate([eager(wide, x).argmax(1) for x in samples])

    def accuracy(onnx_path):  # against the float model's own answers, so float scores 1.0
        return float(np.mean(np.concatenate([run_onnx(onnx_path, x)[0].argmax(1) for x in samples]) == reference))

    report = quantize_dynamic(path, tmp_path / "wide-int8.onnx", samples=samples, evaluate=accuracy)
    assert report.float_bytes == path.stat().st_size
    assert report.int8_bytes == (tmp_path / "wide-int8.onnx").stat().st_size < report.float_bytes / 3
    assert report.float_score == 1.0 and report.int8_score == report.top1_agreement >= 0.8
    assert 0 < report.max_abs_diff < 0.1
    assert load_card(tmp_path / "wide-int8.onnx") == load_card(path)
    int8_ops = {node.op_type for node in onnx.load(str(tmp_path / "wide-int8.onnx")).graph.node}
    assert "MatMulInteger" in int8_ops
    assert "MB ->" in str(report) and "top-1 agreement" in str(report)
    with pytest.raises(ExportError, match="must not replace"):
        quantize_dynamic(path, path)


def test_quantization_can_be_limited_to_some_operators(tmp_path):
    path = to_onnx(tiny_cnn(), sample_input(CARD), CARD, tmp_path / "tiny.onnx")
    quantize_dynamic(path, tmp_path / "all.onnx")
    quantize_dynamic(path, tmp_path / "dense.onnx", op_types=["MatMul", "Gemm"])
    ops = {name: {n.op_type for n in onnx.load(str(tmp_path / name)).graph.node} for name in ("all.onnx", "dense.onnx")}
    assert "ConvInteger" in ops["all.onnx"] and "Conv" not in ops["all.onnx"]
    assert "Conv" in ops["dense.onnx"] and "ConvInteger" not in ops["dense.onnx"]


def test_export_modules_import_without_torch():
    code = "import sys; sys.modules['torch'] = None; import fovea.core.export, fovea.core.quantize; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr


# -- timm models and Lightning checkpoints ----------------------------------------------------------

TIMM_CARD_YAML = "task: classification\nclasses: [a, b]\ndecoder: {kind: softmax}\n"


def test_a_timm_cards_preprocessing_comes_from_timms_data_config():
    from timm.data import resolve_data_config

    module = build_module("timm:test_efficientnet", num_classes=2)
    config = resolve_data_config({}, model=module)
    card = timm_card(
        ModelCard.model_validate({"task": "classification", "classes": ["a", "b"], "decoder": {"kind": "softmax"}}),
        module,
    )
    assert card.input.size == tuple(config["input_size"][1:]) == (160, 160)
    assert card.input.mean == pytest.approx(config["mean"]) and card.input.std == pytest.approx(config["std"])
    assert card.input.resize == "center_crop" and card.input.crop_pct == pytest.approx(config["crop_pct"])
    assert card.provenance.architecture == "test_efficientnet"
    # What the card says itself wins; the rest still comes from timm.
    own = ModelCard.model_validate(
        {"task": "classification", "classes": ["a", "b"], "decoder": {"kind": "softmax"}, "input": {"size": [64, 64]}}
    )
    mixed = timm_card(own, module)
    assert mixed.input.size == (64, 64) and mixed.input.mean == pytest.approx(config["mean"])


def test_the_card_preprocesses_like_timms_own_eval_transform():
    """The tensor Fovea feeds the network is the one timm's eval transform makes from the same photo."""
    from PIL import Image as PILImage
    from skimage import data
    from timm.data import create_transform, resolve_data_config

    from fovea.core.io import Image
    from fovea.core.preprocess import Preprocessor

    module = build_module("timm:test_efficientnet", num_classes=2)
    base = ModelCard.model_validate({"task": "classification", "classes": ["a", "b"], "decoder": {"kind": "softmax"}})
    photo = data.chelsea()  # 300 x 451: the shorter side is resized, then the centre cropped
    expected = create_transform(**resolve_data_config({}, model=module))(PILImage.fromarray(photo)).numpy()
    tensor, _ = Preprocessor(timm_card(base, module).input)([Image(photo, name="chelsea.png")])
    assert tensor.shape == (1, *expected.shape)
    # Resampling filters differ (timm: PIL bicubic), so pixels differ a little (mean 0.056, r = 0.992, measured);
    # a wrong geometry or normalisation is far off: stretching 0.53, crop_pct 0.875 0.36, mean/std 0.5 0.28.
    assert float(np.abs(tensor[0] - expected).mean()) < 0.1
    assert float(np.corrcoef(tensor[0].ravel(), expected.ravel())[0, 1]) > 0.98


def lightning_checkpoint(path, module, prefix):
    """A checkpoint as PyTorch Lightning writes it: the LightningModule's state_dict (the network under its
    attribute name, beside a loss with weights) and training state around it."""
    state = {f"{prefix}{k}": v for k, v in module.state_dict().items()}
    state["criterion.weight"] = torch.ones(2)
    torch.save(
        {
            "epoch": 3,
            "global_step": 120,
            "pytorch-lightning_version": "2.5.1",
            "state_dict": state,
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]}],
            "lr_schedulers": [],
            "hyper_parameters": {"lr": 0.01, "arch": "test_efficientnet"},
        },
        path,
    )
    return path


@pytest.mark.parametrize("prefix", ["model.", "net.", "model.backbone.", ""])
def test_a_lightning_checkpoint_loads_whatever_the_prefix(tmp_path, prefix):
    torch.manual_seed(7)
    trained = build_module("timm:test_efficientnet", num_classes=2)
    ckpt = lightning_checkpoint(tmp_path / "epoch=3.ckpt", trained, prefix)
    torch.manual_seed(8)
    assert not torch.equal(
        build_module("timm:test_efficientnet", num_classes=2).conv_stem.weight, trained.conv_stem.weight
    )
    loaded = build_module("timm:test_efficientnet", num_classes=2, checkpoint=ckpt)
    for name, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_a_checkpoint_of_another_network_is_a_clear_error(tmp_path):
    other = lightning_checkpoint(tmp_path / "other.ckpt", tiny_cnn(), "model.")
    with pytest.raises(
        ExportError, match=r"does not fit the module: missing blocks\..* and \d+ more, unexpected .*model\.0\.weight"
    ):
        build_module("timm:test_efficientnet", num_classes=2, checkpoint=other)
    wrong_classes = lightning_checkpoint(
        tmp_path / "five.ckpt", build_module("timm:test_efficientnet", num_classes=5), "net."
    )
    with pytest.raises(ExportError, match="size mismatch"):
        build_module("timm:test_efficientnet", num_classes=2, checkpoint=wrong_classes)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ExportError, match="cannot read"):
        build_module("timm:test_efficientnet", num_classes=2, checkpoint=tmp_path / "junk.ckpt")


def test_fovea_export_a_timm_lightning_checkpoint_end_to_end(tmp_path):
    torch.manual_seed(3)
    trained = build_module("timm:test_efficientnet", num_classes=2)
    ckpt = lightning_checkpoint(tmp_path / "last.ckpt", trained, "model.")
    card = tmp_path / "card.yaml"
    card.write_text(TIMM_CARD_YAML)
    out = tmp_path / "exported.onnx"
    command = [sys.executable, "-m", "fovea.cli", "export", "timm:test_efficientnet", "--card", card, "--out", out]
    result = subprocess.run([*map(str, command), "--checkpoint", str(ckpt)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    embedded = load_card(out)
    assert embedded.input.size == (160, 160) and embedded.input.resize == "center_crop"
    assert embedded.input.mean == pytest.approx((0.485, 0.456, 0.406))
    x = sample_input(embedded, batch=2)
    np.testing.assert_allclose(run_onnx(out, x)[0], eager(trained, x), atol=1e-4)  # the checkpoint's weights
