"""PyTorch to ONNX (and TorchScript), with the card embedded and a parity check against ONNX Runtime.

torch is imported inside the functions: the serving core never needs it.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fovea.core.card import ModelCard, embed_card
from fovea.errors import ExportError

if TYPE_CHECKING:
    import torch

OPSET = 17


def sample_input(card: ModelCard, batch: int = 1, seed: int = 0) -> np.ndarray:
    """A random input shaped and typed as the card's input spec (for tracing and parity checks)."""
    spec = card.input
    rng = np.random.default_rng(seed)
    shape = (batch, *spec.size, spec.channels) if spec.layout == "NHWC" else (batch, spec.channels, *spec.size)
    if spec.dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(spec.dtype)


@contextmanager
def _atomic_path(path: Path):
    """A temporary path beside `path`, renamed onto it only when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _torch_outputs(module: torch.nn.Module, x: np.ndarray) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        out = module(torch.from_numpy(x))
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [o.detach().cpu().numpy() for o in outs]


def check_parity(
    module: torch.nn.Module, onnx_path: Path, samples: Sequence[np.ndarray], *, atol: float, rtol: float
) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime; ExportError beyond tolerance."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for x in samples:
        expected = _torch_outputs(module, x)
        actual = session.run(None, {name: x})
        if len(expected) != len(actual):
            raise ExportError(f"PyTorch gives {len(expected)} outputs, ONNX gives {len(actual)}")
        for e, a in zip(expected, actual, strict=True):
            if e.shape != a.shape:
                raise ExportError(f"output shape differs: PyTorch {e.shape}, ONNX {a.shape} (batch {len(x)})")
            diff = float(np.max(np.abs(e.astype(np.float64) - a.astype(np.float64)))) if e.size else 0.0
            worst = max(worst, diff)
            if not np.allclose(a, e, atol=atol, rtol=rtol):
                raise ExportError(f"ONNX output differs from PyTorch by up to {diff:.3g} (atol={atol}, rtol={rtol})")
    return worst


def to_onnx(
    module: torch.nn.Module,
    sample: np.ndarray | torch.Tensor,
    card: ModelCard,
    path: str | Path,
    *,
    opset: int = OPSET,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    input_name: str = "input",
    output_names: Sequence[str] | None = None,
) -> Path:
    """Export `module` to ONNX with a dynamic batch axis and the card embedded; verify it against PyTorch.

    The file appears at `path` only when the parity check passes (batch 1 and batch 2).
    """
    import onnx
    import torch

    if opset < 17:
        raise ExportError("opset must be 17 or newer")
    path = Path(path)
    x = sample.detach().cpu().numpy() if isinstance(sample, torch.Tensor) else np.asarray(sample)
    module = module.eval()
    n_outputs = len(_torch_outputs(module, x[:1]))
    names = list(
        output_names
        or card.decoder.outputs
        or (["output"] if n_outputs == 1 else [f"output{i}" for i in range(n_outputs)])
    )
    card = card.model_copy(
        update={
            "input": card.input.model_copy(update={"name": input_name}),
            "decoder": card.decoder.model_copy(update={"outputs": tuple(names)}),
        }
    )
    axes = {name: {0: "batch"} for name in [input_name, *names]}
    with _atomic_path(path) as tmp:
        try:
            torch.onnx.export(
                module,
                (torch.from_numpy(x[:1]),),
                str(tmp),
                input_names=[input_name],
                output_names=names,
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        except Exception as exc:  # torch raises many types from tracing
            raise ExportError(f"torch.onnx.export failed: {exc}") from None
        model = onnx.load(str(tmp))
        embed_card(model, card)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        # A batch of two different samples proves the dynamic batch axis and catches traced-in constants.
        second = 255 - x[:1] if x.dtype == np.uint8 else (x[:1] * 0.5 + 0.25).astype(x.dtype)
        batch2 = np.concatenate([x[:1], second])
        check_parity(module, tmp, [x[:1], batch2], atol=atol, rtol=rtol)
    return path


def to_torchscript(module: torch.nn.Module, sample: np.ndarray, path: str | Path, *, atol: float = 1e-5) -> Path:
    """Trace `module` to TorchScript and check the traced module agrees with the original."""
    import torch

    path = Path(path)
    module = module.eval()
    x = torch.from_numpy(np.asarray(sample))
    with torch.inference_mode():
        traced = torch.jit.trace(module, x)
        expected, actual = module(x), traced(x)
    if not torch.allclose(expected, actual, atol=atol):
        raise ExportError("the traced TorchScript module disagrees with the original")
    with _atomic_path(path) as tmp:
        traced.save(str(tmp))
    return path


@dataclass(frozen=True, slots=True)
class QuantizationReport:
    float_bytes: int
    int8_bytes: int
    max_abs_diff: float | None = None
    top1_agreement: float | None = None

    def __str__(self) -> str:
        text = f"{self.float_bytes / 1e6:.1f} MB -> {self.int8_bytes / 1e6:.1f} MB"
        if self.top1_agreement is not None:
            text += f"; top-1 agreement {self.top1_agreement:.1%}, max |diff| {self.max_abs_diff:.3g}"
        return text


def quantize_dynamic(
    onnx_path: str | Path, out_path: str | Path, *, samples: Sequence[np.ndarray] | None = None
) -> QuantizationReport:
    """Dynamic INT8 weight quantisation (ONNX Runtime), keeping the card; reports the change on `samples`."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    original = onnx.load(str(onnx_path))
    with _atomic_path(out_path) as tmp:
        ort_quantize(str(onnx_path), str(tmp), weight_type=QuantType.QInt8)
        quantized = onnx.load(str(tmp))
        del quantized.metadata_props[:]
        quantized.metadata_props.extend(original.metadata_props)
        onnx.save(quantized, str(tmp))
    report = QuantizationReport(onnx_path.stat().st_size, out_path.stat().st_size)
    if not samples:
        return report
    runs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (onnx_path, out_path)]
    name = runs[0].get_inputs()[0].name
    diffs, agree = [], []
    for x in samples:
        a, b = (s.run(None, {name: x})[0] for s in runs)
        diffs.append(float(np.max(np.abs(a - b))))
        agree.extend((a.reshape(len(x), -1).argmax(1) == b.reshape(len(x), -1).argmax(1)).tolist())
    return QuantizationReport(report.float_bytes, report.int8_bytes, max(diffs), float(np.mean(agree)))


def build_module(factory: str, *, num_classes: int, checkpoint: str | Path | None = None) -> torch.nn.Module:
    """A module from `package.module:function` (given num_classes) or `timm:ARCH`, with a state_dict."""
    import torch

    if factory.startswith("timm:"):
        import timm

        module = timm.create_model(factory[5:], pretrained=False, num_classes=num_classes)
    else:
        module_name, _, attribute = factory.partition(":")
        if not attribute:
            raise ExportError(f"factory {factory!r} must look like package.module:function or timm:ARCH")
        try:
            make: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ExportError(f"cannot import {factory}: {exc}") from None
        module = make(num_classes=num_classes)
    if checkpoint is not None:
        state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
        module.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    return module.eval()
