"""ONNX Runtime engine: one InferenceSession, inputs and outputs by name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fovea.errors import InputError

# Accelerators first; ONNX Runtime falls back along the list for nodes a provider cannot run.
_PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def available_providers() -> list[str]:
    """Execution providers this machine's ONNX Runtime build offers, best first."""
    have = set(ort.get_available_providers())
    return [p for p in _PREFERRED if p in have]


def default_threads() -> int:
    """Cores this process may use (honours CPU affinity, e.g. in containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxEngine:
    """A loaded ONNX model.

    `threads` sizes ONNX Runtime's intra-op pool: all cores for lowest single-request latency, 1 when
    the caller runs several engines or decode threads side by side and wants them not to fight.
    """

    def __init__(
        self, model: str | Path | bytes, *, providers: list[str] | None = None, threads: int | None = None
    ) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, options, providers=providers or available_providers())
        except Exception as exc:  # ORT raises its own untyped errors for malformed graphs
            name = "model" if isinstance(model, bytes) else Path(model).name
            raise InputError(f"{name}: ONNX file is malformed or cannot run ({_first_line(exc)})") from None
        self.threads = options.intra_op_num_threads
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    @property
    def on_cpu(self) -> bool:
        """No accelerator runs this model's nodes (CPU is ONNX Runtime's last resort)."""
        return self.providers[0] == "CPUExecutionProvider"

    def input_shape(self, name: str | None = None) -> list[int | str | None]:
        return list(self.inputs[name or self.input_names[0]].shape)

    def run(self, feeds: dict[str, np.ndarray] | np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """Run the network; a bare array feeds the first input. Returns outputs by name."""
        if isinstance(feeds, np.ndarray):
            feeds = {self.input_names[0]: feeds}
        names = outputs or self.outputs
        return dict(zip(names, self.session.run(names, feeds), strict=True))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
