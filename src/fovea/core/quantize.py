"""Dynamic INT8 quantisation of an ONNX weights file (ONNX Runtime), keeping its card, with a report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fovea.errors import ExportError
from fovea.paths import atomic_path


@dataclass(frozen=True, slots=True)
class QuantizationReport:
    """What quantisation changed: file sizes, and on the given samples, how far the outputs moved."""

    float_bytes: int
    int8_bytes: int
    max_abs_diff: float | None = None  # largest |float - int8| over every output value of the samples
    top1_agreement: float | None = None  # share of sample items whose arg-max (first output) is unchanged
    float_score: float | None = None  # `evaluate(float file)`, e.g. accuracy on a labelled split
    int8_score: float | None = None  # `evaluate(int8 file)`

    @property
    def size_ratio(self) -> float:
        return self.int8_bytes / self.float_bytes

    def __str__(self) -> str:
        text = f"{self.float_bytes / 1e6:.2f} MB -> {self.int8_bytes / 1e6:.2f} MB ({self.size_ratio:.0%})"
        if self.top1_agreement is not None:
            text += f"; top-1 agreement {self.top1_agreement:.1%}, max |diff| {self.max_abs_diff:.3g}"
        if self.float_score is not None:
            text += f"; score {self.float_score:.4g} -> {self.int8_score:.4g}"
        return text


def quantize_dynamic(
    onnx_path: str | Path,
    out_path: str | Path,
    *,
    samples: np.ndarray | Sequence[np.ndarray] | None = None,
    evaluate: Callable[[Path], float] | None = None,
    op_types: Sequence[str] | None = None,
) -> QuantizationReport:
    """Write `onnx_path` with INT8 weights (dynamic activation quantisation) to `out_path`, card included.

    `samples` (one input batch, or several) are run through both files to measure the change;
    `evaluate`, called with each file's path, returns a score (e.g. accuracy) to compare.
    `op_types` limits quantisation to those operators (e.g. `["MatMul", "Gemm"]`: convolutional networks
    such as EfficientNet-Lite0 lose much more accuracy in their INT8 convolutions than in their dense layers).
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if onnx_path.resolve() == out_path.resolve():
        raise ExportError("the quantised file must not replace its float source")
    original = onnx.load(str(onnx_path), load_external_data=False)
    with atomic_path(out_path) as tmp:
        try:
            with _quiet_quantizer():
                ort_quantize(str(onnx_path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=op_types)
        except Exception as exc:  # ONNX Runtime's quantiser raises plain exceptions of many kinds
            raise ExportError(f"quantisation of {onnx_path.name} failed: {type(exc).__name__}: {exc}") from None
        quantized = onnx.load(str(tmp))
        del quantized.metadata_props[:]
        quantized.metadata_props.extend(original.metadata_props)
        onnx.save(quantized, str(tmp))
    sizes = {"float_bytes": onnx_path.stat().st_size, "int8_bytes": out_path.stat().st_size}
    scores = {"float_score": evaluate(onnx_path), "int8_score": evaluate(out_path)} if evaluate else {}
    batches = [samples] if isinstance(samples, np.ndarray) else list(samples or [])
    if not batches:
        return QuantizationReport(**sizes, **scores)
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (onnx_path, out_path)]
    name = sessions[0].get_inputs()[0].name
    worst, agree = 0.0, []
    for x in batches:
        floats, ints = (s.run(None, {name: x}) for s in sessions)
        worst = max([worst, *(float(np.max(np.abs(a - b))) for a, b in zip(floats, ints, strict=True) if a.size)])
        first_f, first_i = floats[0].reshape(len(x), -1), ints[0].reshape(len(x), -1)
        agree.extend((first_f.argmax(1) == first_i.argmax(1)).tolist())
    return QuantizationReport(**sizes, **scores, max_abs_diff=worst, top1_agreement=float(np.mean(agree)))


class _QuantizerNoise(logging.Filter):
    """ONNX Runtime's quantiser warns on the root logger about every integer shape tensor it leaves alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Please consider to run pre-processing"):
            return False
        return not (message.startswith("Inference failed or unsupported type") and "elem_type: 1\n" not in message)


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    noise = _QuantizerNoise()
    root = logging.getLogger()
    root.addFilter(noise)
    try:
        yield
    finally:
        root.removeFilter(noise)
