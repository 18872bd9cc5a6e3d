"""How a session's model looks through V2: its tensor input, raw outputs and batch limit."""

from __future__ import annotations

from typing import Any

from fovea.sessions.session import ModelSession

VERSION = "1"
IMAGE_INPUT = "image_bytes"  # encoded images, decoded and preprocessed by the server (§13)
_ONNX_TO_V2 = {
    "tensor(float)": "FP32",
    "tensor(float16)": "FP16",
    "tensor(double)": "FP64",
    "tensor(uint8)": "UINT8",
    "tensor(int8)": "INT8",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


def tensor_input(session: ModelSession) -> dict[str, Any]:
    spec = session.card.input
    dims = [*spec.size, spec.channels] if spec.layout == "NHWC" else [spec.channels, *spec.size]
    batch = -1 if session.model.fixed_batch_size is None else session.model.fixed_batch_size
    return {
        "name": session.model.input_name,
        "datatype": "UINT8" if spec.dtype == "uint8" else ("FP16" if spec.dtype == "float16" else "FP32"),
        "shape": [batch, *dims],
    }


def raw_outputs(session: ModelSession) -> list[dict[str, Any]]:
    outputs = {o.name: o for o in session.model.network.session.get_outputs()}
    return [
        {
            "name": name,
            "datatype": _ONNX_TO_V2.get(outputs[name].type, "FP32"),
            "shape": [d if isinstance(d, int) and d >= 0 else -1 for d in outputs[name].shape],
        }
        for name in session.model.output_names
    ]


def batch_limit(session: ModelSession) -> int:
    return 0 if session.model.fixed_batch_size is not None else session.batcher.max_batch_size


# -- server and model information -----------------------------------------------------------------
