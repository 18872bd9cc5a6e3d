"""How a session's model looks through V2: its tensor input, raw outputs and batch limit.

A custom model (sessions/custom.py) has no tensor input and no raw outputs: it takes encoded images
(`image_bytes`, or a raw image body) and answers with the post-processed outputs of its task.
"""

from __future__ import annotations

from typing import Any

from fovea.server.dialects.v2_outputs import postprocessed_specs
from fovea.sessions.custom import AnySession, CustomSession
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


def model_input(session: AnySession) -> dict[str, Any]:
    """The input the model advertises: its tensor, or for a custom model the encoded images."""
    if isinstance(session, CustomSession):
        return {"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]}
    return tensor_input(session)


def platform(session: AnySession) -> str:
    return "custom" if isinstance(session, CustomSession) else "onnxruntime_onnx"


def tensor_input(session: ModelSession) -> dict[str, Any]:
    spec = session.card.input
    dims = [*spec.size, spec.channels] if spec.layout == "NHWC" else [spec.channels, *spec.size]
    batch = -1 if session.model.fixed_batch_size is None else session.model.fixed_batch_size
    return {
        "name": session.model.input_name,
        "datatype": "UINT8" if spec.dtype == "uint8" else ("FP16" if spec.dtype == "float16" else "FP32"),
        "shape": [batch, *dims],
    }


def model_outputs(session: AnySession) -> list[dict[str, Any]]:
    """The outputs the model advertises: the network's, or for a custom model the post-processed ones."""
    if isinstance(session, CustomSession):
        return postprocessed_specs(session.card.task, len(session.card.classes), len(session.card.regressions))
    return raw_outputs(session)


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


def raw_output_names(session: AnySession) -> list[str]:
    return [] if isinstance(session, CustomSession) else session.model.output_names


def batch_limit(session: AnySession) -> int:
    if isinstance(session, CustomSession):
        return session.config.max_batch_size
    return 0 if session.model.fixed_batch_size is not None else session.batcher.max_batch_size
