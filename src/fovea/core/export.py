"""PyTorch to ONNX (and TorchScript), with the card embedded and a parity check against ONNX Runtime.

torch is imported inside the functions: the serving core never needs it. The legacy TorchScript-based ONNX
exporter (`dynamo=False`) is used on purpose: on torch 2.14 it exports EfficientNet-Lite0 in about a second at
exactly opset 17, while the dynamo exporter takes ~10 s and cannot down-convert that graph below opset 18.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fovea.core.card import InputSpec, ModelCard, embed_card
from fovea.core.quantize import QuantizationReport, quantize_dynamic
from fovea.errors import ExportError
from fovea.paths import atomic_path

if TYPE_CHECKING:
    import torch

__all__ = [
    "OPSET",
    "QuantizationReport",
    "build_module",
    "check_parity",
    "load_weights",
    "quantize_dynamic",
    "sample_input",
    "timm_card",
    "to_onnx",
    "to_torchscript",
]

OPSET = 17


def sample_input(card: ModelCard, batch: int = 1, seed: int = 0) -> np.ndarray:
    """A random input shaped and typed as the card's input spec (for tracing and parity checks)."""
    spec = card.input
    rng = np.random.default_rng(seed)
    shape = (batch, *_item_shape(spec))
    if spec.dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(spec.dtype)


def to_onnx(
    module: torch.nn.Module,
    sample: np.ndarray | torch.Tensor,
    card: ModelCard,
    path: str | Path,
    *,
    opset: int = OPSET,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    input_name: str | None = None,
    output_names: Sequence[str] | None = None,
) -> Path:
    """Export `module` (in eval mode) to ONNX with a dynamic batch axis and `card` embedded; verify it.

    Tensor names come from the arguments, else from the card (`input.name`, `decoder.outputs`), else
    `input` and `output` (`output0`, `output1`, ... for several outputs); the embedded card records them.
    The file is checked with `onnx.checker` and run by ONNX Runtime on `sample` and on a batch of two;
    it appears at `path` only when every output matches PyTorch within `atol` + `rtol` * |expected|.
    """
    import onnx

    if opset < OPSET:
        raise ExportError(f"opset must be {OPSET} or newer, not {opset}")
    path = Path(path)
    x = _as_numpy(sample)
    _check_sample_fits_card(x, card.input)
    with _eval_mode(module):
        name_in, names_out = _tensor_names(card, input_name, output_names, len(_torch_outputs(module, x)))
        card = card.model_copy(
            update={
                "input": card.input.model_copy(update={"name": name_in, "dynamic_batch": True}),
                "decoder": card.decoder.model_copy(update={"outputs": tuple(names_out)}),
            }
        )
        with atomic_path(path) as tmp:
            tracer_notes = _trace_to_onnx(module, x, tmp, name_in, names_out, opset)
            model = onnx.load(str(tmp))
            embed_card(model, card)
            try:
                onnx.checker.check_model(model, full_check=True)
            except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
                raise ExportError(f"the exported graph does not pass onnx.checker: {exc}") from None
            onnx.save(model, str(tmp))
            try:
                check_parity(module, tmp, [x, _batch_of_two(x)], atol=atol, rtol=rtol)
            except ExportError as exc:
                raise ExportError(f"{exc}{tracer_notes}") from None
    return path


def _trace_to_onnx(
    module: torch.nn.Module, x: np.ndarray, path: Path, name_in: str, names_out: list[str], opset: int
) -> str:
    """Run the legacy exporter with a dynamic batch axis everywhere; returns the tracer's warnings as a note."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.onnx.export(
                module,
                (torch.from_numpy(x),),
                str(path),
                input_names=[name_in],
                output_names=names_out,
                dynamic_axes={name: {0: "batch"} for name in [name_in, *names_out]},
                opset_version=opset,
                dynamo=False,
            )
        except Exception as exc:  # tracing raises many types
            raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from None
    return _tracer_warnings(caught)


def check_parity(
    module: torch.nn.Module, onnx_path: str | Path, samples: Sequence[np.ndarray], *, atol: float, rtol: float
) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime (CPU) on `samples`; ExportError beyond tolerance."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for x in samples:
        worst = max(worst, _compare(_torch_outputs(module, x), session.run(None, {name: x}), atol, rtol, "ONNX"))
    return worst


def to_torchscript(
    module: torch.nn.Module,
    sample: np.ndarray | torch.Tensor,
    path: str | Path,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> Path:
    """Trace `module` (in eval mode) to TorchScript; the saved file must match it on `sample` and a batch of two."""
    import torch

    path = Path(path)
    x = _as_numpy(sample)
    with _eval_mode(module), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.no_grad():
                traced = torch.jit.trace(module, torch.from_numpy(x))
        except Exception as exc:
            raise ExportError(f"torch.jit.trace failed: {type(exc).__name__}: {exc}") from None
    tracer_notes = _tracer_warnings(caught)
    with _eval_mode(module), atomic_path(path) as tmp:
        traced.save(str(tmp))
        reloaded = torch.jit.load(str(tmp))
        for batch in (x, _batch_of_two(x)):
            try:
                _compare(_torch_outputs(module, batch), _torch_outputs(reloaded, batch), atol, rtol, "TorchScript")
            except ExportError as exc:
                raise ExportError(f"{exc}{tracer_notes}") from None
    return path


def build_module(factory: str, *, num_classes: int, checkpoint: str | Path | None = None) -> torch.nn.Module:
    """A module from `package.module:function` (given num_classes) or `timm:ARCH`, with a state_dict.

    `checkpoint` is a saved state_dict, or a checkpoint holding one under `state_dict` (PyTorch Lightning's
    `.ckpt`, whose keys carry the LightningModule's attribute name: `model.`, `net.`...; see `load_weights`).
    """
    if factory.startswith("timm:"):
        import timm

        try:
            module = timm.create_model(factory[5:], pretrained=False, num_classes=num_classes)
        except RuntimeError as exc:  # timm's "Unknown model"
            raise ExportError(f"timm cannot build {factory[5:]!r}: {exc}") from None
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
        load_weights(module, checkpoint)
    return module.eval()


def load_weights(module: torch.nn.Module, checkpoint: str | Path) -> None:
    """Load a state_dict file, or a training checkpoint's `state_dict`, into `module` (strictly).

    Training wrappers prefix the network's keys with their attribute (`model.conv1.weight`), and may keep other
    modules beside it (a loss with weights, an EMA copy). The prefix whose keys are exactly the module's is
    stripped and the rest ignored; when none fits, the error names what is missing and what is left over.
    Only tensors and plain containers are unpickled (`weights_only`): a checkpoint cannot run code.
    """
    import pickle

    import torch

    try:
        state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"cannot read {checkpoint} as a checkpoint of tensors: {first}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError(f"{checkpoint} holds no state_dict (a mapping of names to tensors)")
    wanted = set(module.state_dict())
    state = _unprefixed(state, wanted)
    missing, unexpected = sorted(wanted - set(state)), sorted(set(state) - wanted)
    if missing or unexpected:
        raise ExportError(
            f"{checkpoint} does not fit the module: missing {_few(missing)}, unexpected {_few(unexpected)}"
        )
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:  # shapes that differ
        raise ExportError(f"{checkpoint} does not fit the module: {str(exc).strip().splitlines()[-1]}") from None


def _unprefixed(state: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    """`state` with the key prefix (`model.`, `net.`, `model.backbone.`, `module.`...) that makes its keys the
    module's; `state` itself when its keys already are, or when no prefix does."""
    if wanted <= set(state):
        return {k: v for k, v in state.items() if k in wanted}
    prefixes = {".".join(k.split(".")[:depth]) + "." for k in state for depth in (1, 2, 3) if k.count(".") >= depth}
    for prefix in sorted(prefixes, key=len):
        stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if set(stripped) == wanted:
            return stripped
    return state


def _few(names: list[str], shown: int = 3) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def timm_card(card: ModelCard, module: torch.nn.Module) -> ModelCard:
    """`card` with its input preprocessing taken from timm's data config for `module`
    (`timm.data.resolve_data_config`: input size, mean, std, crop), wherever the card does not set it itself.

    timm's eval transform resizes the shorter side to size / crop_pct and crops the centre ("center" crop mode),
    or resizes to the size ("squash"): Fovea's `center_crop` and `stretch`. Pixels are scaled to 0..1 first.
    """
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=module)
    channels, *size = config["input_size"]
    derived = {
        "color": "GRAY" if channels == 1 else "RGB",
        "size": tuple(size),
        "resize": "stretch" if config.get("crop_mode") == "squash" else "center_crop",
        "crop_pct": float(config.get("crop_pct") or 1.0),
        "scale": 1 / 255,
        "mean": tuple(float(m) for m in config["mean"]),
        "std": tuple(float(s) for s in config["std"]),
    }
    given = card.input.model_dump(exclude_unset=True)
    spec = InputSpec.model_validate({**derived, **given})
    architecture = card.provenance.architecture or getattr(module, "default_cfg", {}).get("architecture")
    return card.model_copy(
        update={"input": spec, "provenance": card.provenance.model_copy(update={"architecture": architecture})}
    )


# -- helpers --------------------------------------------------------------------------------------


@contextmanager
def _eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode (dropout off, batch-norm statistics frozen) for the block; the caller's mode comes back after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _item_shape(spec: InputSpec) -> tuple[int, ...]:
    return (*spec.size, spec.channels) if spec.layout == "NHWC" else (spec.channels, *spec.size)


def _as_numpy(sample: Any) -> np.ndarray:
    if hasattr(sample, "detach"):  # a torch.Tensor
        sample = sample.detach().cpu().numpy()
    x = np.ascontiguousarray(sample)
    if x.ndim < 2 or len(x) < 1:
        raise ExportError(f"the sample must be a batch (N, ...) with N >= 1, not shape {x.shape}")
    return x


def _check_sample_fits_card(x: np.ndarray, spec: InputSpec) -> None:
    # The card is what serving trusts: a sample of another shape means the card describes another network.
    if tuple(x.shape[1:]) != _item_shape(spec):
        raise ExportError(
            f"sample shape {tuple(x.shape)} does not match the card's input spec "
            f"({spec.layout}, {spec.color}, size {spec.size}): expected (N, {', '.join(map(str, _item_shape(spec)))})"
        )


def _tensor_names(
    card: ModelCard, input_name: str | None, output_names: Sequence[str] | None, n_outputs: int
) -> tuple[str, list[str]]:
    card_in, card_out = card.input.name, card.decoder.outputs
    if input_name and card_in and input_name != card_in:
        raise ExportError(f"input_name {input_name!r} contradicts the card's input.name {card_in!r}")
    if output_names and card_out and tuple(output_names) != tuple(card_out):
        raise ExportError(f"output_names {list(output_names)} contradict the card's decoder.outputs {list(card_out)}")
    name_in = input_name or card_in or "input"
    names_out = list(
        output_names or card_out or (["output"] if n_outputs == 1 else [f"output{i}" for i in range(n_outputs)])
    )
    if len(names_out) != n_outputs:
        raise ExportError(f"{len(names_out)} output names {names_out} for a module with {n_outputs} outputs")
    if len({name_in, *names_out}) != 1 + n_outputs:
        raise ExportError(f"tensor names must be unique: {[name_in, *names_out]}")
    return name_in, names_out


def _batch_of_two(x: np.ndarray) -> np.ndarray:
    """Two different items: proves the dynamic batch axis and catches values traced in as constants."""
    if len(x) >= 2:
        return x[:2]
    first = x[:1]
    second = 255 - first if x.dtype == np.uint8 else (first * 0.5 + 0.25).astype(x.dtype)
    return np.concatenate([first, second])


def _torch_outputs(module: Any, x: np.ndarray) -> list[np.ndarray]:
    import torch

    try:
        with torch.inference_mode():
            out = module(torch.from_numpy(x))
    except Exception as exc:  # whatever the module raises, the export cannot go on
        raise ExportError(f"the module fails on a batch of shape {x.shape}: {type(exc).__name__}: {exc}") from None
    outs = out if isinstance(out, (list, tuple)) else [out]
    if not outs or not all(isinstance(o, torch.Tensor) for o in outs):
        raise ExportError(f"the module must return a tensor or a tuple of tensors, not {type(out).__name__}")
    return [o.detach().cpu().numpy() for o in outs]


def _compare(expected: list[np.ndarray], actual: list[np.ndarray], atol: float, rtol: float, what: str) -> float:
    if len(expected) != len(actual):
        raise ExportError(f"PyTorch gives {len(expected)} outputs, {what} gives {len(actual)}")
    worst = 0.0
    for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
        if e.shape != a.shape:
            raise ExportError(f"output {i} shape differs: PyTorch {e.shape}, {what} {a.shape}")
        diff = float(np.max(np.abs(e.astype(np.float64) - a.astype(np.float64)))) if e.size else 0.0
        worst = max(worst, diff)
        if not np.allclose(a, e, atol=atol, rtol=rtol):
            raise ExportError(
                f"{what} output {i} differs from PyTorch by up to {diff:.3g} "
                f"(atol={atol}, rtol={rtol}; batch of {len(e)})"
            )
    return worst


def _tracer_warnings(caught: list[warnings.WarningMessage]) -> str:
    """Tracer warnings (they explain most parity failures) as a note; other warnings are passed on."""
    from torch.jit import TracerWarning

    notes, passed_on = [], set()
    for w in caught:
        if issubclass(w.category, TracerWarning):
            notes.append(str(w.message).split("\n")[0])
        elif (key := (w.category, str(w.message))) not in passed_on:  # once each, as the default filter would
            passed_on.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return f"; tracing warned: {notes[0]}" if notes else ""
