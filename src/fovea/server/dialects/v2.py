"""The KServe V2 / Open Inference Protocol with Triton's binary, config, statistics and repository
extensions (reference/open-inference-protocol.md). Errors are `{"error": ...}`; success is exactly 200.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fovea import __version__
from fovea.core.geometry import Geometry
from fovea.core.onnx_model import Batch
from fovea.errors import InputError, LimitExceeded
from fovea.server.dialects.v2_codec import (
    DATATYPES,
    InferRequest,
    InputTensor,
    encode_infer_response,
    parse_infer_request,
)
from fovea.server.dialects.v2_outputs import postprocessed, postprocessed_names
from fovea.server.errors import NotImplementedEndpoint, NotReady, dialect_route
from fovea.sessions.session import ModelSession

VERSION = "1"
IMAGE_INPUT = "image_bytes"
EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics", "model_repository", "parameters"]
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


def render_error(status: int, message: str, detail: Any, headers: dict[str, str]) -> Response:
    return JSONResponse({"error": message}, status, headers=headers)


router = APIRouter(prefix="/v2", route_class=dialect_route(render_error))


@dataclass
class V2Stats:
    """Per-model counters in Triton's statistics shape (§11); all integral nanoseconds."""

    success: list[int] = field(default_factory=lambda: [0, 0])
    fail: list[int] = field(default_factory=lambda: [0, 0])
    queue: list[int] = field(default_factory=lambda: [0, 0])
    compute_input: list[int] = field(default_factory=lambda: [0, 0])
    compute_infer: list[int] = field(default_factory=lambda: [0, 0])
    compute_output: list[int] = field(default_factory=lambda: [0, 0])
    inference_count: int = 0
    last_inference: int = 0
    batches: dict[int, list[int]] = field(default_factory=dict)

    @staticmethod
    def add(pair: list[int], seconds: float) -> None:
        pair[0] += 1
        pair[1] += int(seconds * 1e9)

    def as_json(self, name: str, execution_count: int) -> dict[str, Any]:
        def pair(p: list[int]) -> dict[str, int]:
            return {"count": p[0], "ns": p[1]}

        return {
            "name": name,
            "version": VERSION,
            "last_inference": self.last_inference,
            "inference_count": self.inference_count,
            "execution_count": execution_count,
            "inference_stats": {
                "success": pair(self.success),
                "fail": pair(self.fail),
                "queue": pair(self.queue),
                "compute_input": pair(self.compute_input),
                "compute_infer": pair(self.compute_infer),
                "compute_output": pair(self.compute_output),
                "cache_hit": {"count": 0, "ns": 0},
                "cache_miss": {"count": 0, "ns": 0},
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": {"count": c[0], "ns": c[1]},
                    "compute_infer": {"count": c[0], "ns": c[2]},
                    "compute_output": {"count": c[0], "ns": c[3]},
                }
                for size, c in sorted(self.batches.items())
            ],
            "memory_usage": [],
        }


def install_error_handlers(app: FastAPI) -> None:
    """404/405 outside any route, in a shape every dialect's clients can read."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail)
        # V2 clients read `error`, Supervisely clients `message`/`detail`: one body serves all of them.
        body = {"error": message, "success": False, "message": message, "detail": message}
        return JSONResponse(body, exc.status_code, headers=dict(exc.headers or {}))


def _session(request: Request) -> ModelSession:
    return request.app.state.session


def _stats(request: Request) -> V2Stats:
    state = request.app.state
    if getattr(state, "v2_stats", None) is None:
        state.v2_stats = V2Stats()
    return state.v2_stats


def _check_model(session: ModelSession, model: str, version: str | None = None) -> None:
    if model != session.name or (version is not None and version != VERSION):
        raise LookupError(f"Request for unknown model: '{model}' is not found")


def _loaded(request: Request) -> bool:
    return not getattr(request.app.state, "unloaded", False) and _session(request).batcher.running


# -- shapes the model advertises ------------------------------------------------------------------


def _tensor_input(session: ModelSession) -> dict[str, Any]:
    spec = session.card.input
    dims = [*spec.size, spec.channels] if spec.layout == "NHWC" else [spec.channels, *spec.size]
    batch = -1 if session.model.fixed_batch_size is None else session.model.fixed_batch_size
    return {
        "name": session.model.input_name,
        "datatype": "UINT8" if spec.dtype == "uint8" else ("FP16" if spec.dtype == "float16" else "FP32"),
        "shape": [batch, *dims],
    }


def _raw_outputs(session: ModelSession) -> list[dict[str, Any]]:
    outputs = {o.name: o for o in session.model.network.session.get_outputs()}
    return [
        {
            "name": name,
            "datatype": _ONNX_TO_V2.get(outputs[name].type, "FP32"),
            "shape": [d if isinstance(d, int) and d >= 0 else -1 for d in outputs[name].shape],
        }
        for name in session.model.output_names
    ]


def _max_batch(session: ModelSession) -> int:
    return 0 if session.model.fixed_batch_size is not None else session.batcher.max_batch_size


# -- server and model information -----------------------------------------------------------------


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    if _loaded(request):
        return JSONResponse({"ready": True})
    return JSONResponse({"ready": False, "error": "the model is not loaded"}, 503)


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "fovea", "version": __version__, "extensions": EXTENSIONS}


@router.get("/models/stats")
async def all_stats(request: Request) -> dict[str, Any]:
    session = _session(request)
    return {"model_stats": [_stats(request).as_json(session.name, session.batcher.stats.runs)]}


@router.get("/models/{model}")
@router.get("/models/{model}/versions/{version}")
async def model_metadata(request: Request, model: str, version: str | None = None) -> dict[str, Any]:
    session = _session(request)
    _check_model(session, model, version)
    raw = [o["name"] for o in _raw_outputs(session)]
    return {
        "name": session.name,
        "versions": [VERSION],
        "platform": "onnxruntime_onnx",
        "inputs": [_tensor_input(session)],
        "outputs": _raw_outputs(session),
        "properties": {
            "fovea.task": str(session.card.task),
            "fovea.encoded_input": IMAGE_INPUT,
            "fovea.postprocessed_outputs": ",".join(postprocessed_names(session.card.task, raw)),
            "fovea.classes": json.dumps(list(session.card.class_names)),
        },
    }


@router.get("/models/{model}/ready")
@router.get("/models/{model}/versions/{version}/ready")
async def model_ready(request: Request, model: str, version: str | None = None) -> Response:
    _check_model(_session(request), model, version)
    if _loaded(request):
        return JSONResponse({"name": model, "ready": True})
    return JSONResponse({"name": model, "ready": False, "error": "the model is not loaded"}, 503)


@router.get("/models/{model}/config")
@router.get("/models/{model}/versions/{version}/config")
async def model_config(request: Request, model: str, version: str | None = None) -> dict[str, Any]:
    session = _session(request)
    _check_model(session, model, version)
    max_batch = _max_batch(session)
    tensor = _tensor_input(session)
    layout = session.card.input.layout
    config: dict[str, Any] = {
        "name": session.name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": max_batch,
        "input": [
            {
                "name": tensor["name"],
                "data_type": f"TYPE_{tensor['datatype']}",
                "format": "FORMAT_NHWC" if layout == "NHWC" else "FORMAT_NCHW" if layout == "NCHW" else "FORMAT_NONE",
                "dims": tensor["shape"][1:] if max_batch else tensor["shape"],
            }
        ],
        "output": [
            {
                "name": o["name"],
                "data_type": "TYPE_STRING" if o["datatype"] == "BYTES" else f"TYPE_{o['datatype']}",
                "dims": o["shape"][1:] if max_batch else o["shape"],
            }
            for o in _raw_outputs(session)
        ],
        "version_policy": {"latest": {"num_versions": 1}},
    }
    if max_batch > 1:
        config["dynamic_batching"] = {}
    return config


@router.get("/models/{model}/stats")
@router.get("/models/{model}/versions/{version}/stats")
async def model_stats(request: Request, model: str, version: str | None = None) -> dict[str, Any]:
    session = _session(request)
    _check_model(session, model, version)
    return {"model_stats": [_stats(request).as_json(session.name, session.batcher.stats.runs)]}


# -- repository -----------------------------------------------------------------------------------


@router.post("/repository/index")
async def repository_index(request: Request) -> list[dict[str, str]]:
    loaded = _loaded(request)
    body = await _json_body(request)
    if body.get("ready") and not loaded:
        return []
    state = "READY" if loaded else "UNAVAILABLE"
    return [{"name": _session(request).name, "version": VERSION, "state": state, "reason": ""}]


def _check_repository_control(request: Request) -> None:
    allowed = getattr(request.app.state, "repository_control", True)
    if callable(allowed):
        allowed = allowed(request)
    if not allowed:
        raise PermissionError("loading and unloading this model needs its owner's token")


@router.post("/repository/models/{model}/load")
async def load_model(request: Request, model: str) -> Response:
    session = _session(request)
    try:
        _check_model(session, model)
    except LookupError:
        raise InputError(f"failed to load '{model}': no such model") from None
    _check_repository_control(request)
    body = await _json_body(request)
    config = (body.get("parameters") or {}).get("config")
    if config is not None:
        try:
            overrides = json.loads(config)
        except (TypeError, ValueError):
            raise InputError("failed to load: parameters.config is not a JSON string") from None
        unknown = set(overrides) - {"max_batch_size", "dynamic_batching"}
        if unknown:
            raise InputError(f"failed to load: config keys {sorted(unknown)} cannot be changed")
        if "max_batch_size" in overrides:
            value = overrides["max_batch_size"]
            if not isinstance(value, int) or value < 1:
                raise InputError("failed to load: max_batch_size must be a positive integer")
            session.batcher.max_batch_size = min(value, session.model.fixed_batch_size or value)
    await session.start()
    request.app.state.unloaded = False
    return Response(status_code=200)


@router.post("/repository/models/{model}/unload")
async def unload_model(request: Request, model: str) -> Response:
    _check_model(_session(request), model)
    _check_repository_control(request)
    await _session(request).batcher.aclose()
    request.app.state.unloaded = True
    return Response(status_code=200)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}  # curl-based clients send an empty form body
    return value if isinstance(value, dict) else {}


# -- inference ------------------------------------------------------------------------------------


async def _body(request: Request, max_bytes: int) -> bytes:
    body = await request.body()
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InputError(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or identity")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise InputError(f"the request body is not valid {encoding} data") from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise LimitExceeded(f"the decompressed request body is over the limit of {max_bytes} bytes")
    return data


@router.post("/models/{model}/infer")
@router.post("/models/{model}/versions/{version}/infer")
async def infer(request: Request, model: str, version: str | None = None) -> Response:
    session = _session(request)
    _check_model(session, model, version)
    stats = _stats(request)
    started = time.perf_counter()
    try:
        if not _loaded(request):
            raise NotReady("the model is not loaded")
        body = await _body(request, session.limits.max_bytes)
        parsed = parse_infer_request(
            body, request.headers.get("inference-header-content-length"), max_bytes=session.limits.max_bytes
        )
        response = await _infer(request, session, parsed, stats)
    except Exception:
        stats.add(stats.fail, time.perf_counter() - started)
        raise
    stats.add(stats.success, time.perf_counter() - started)
    stats.last_inference = int(time.time() * 1000)
    return response


def _settings(session: ModelSession, parameters: dict[str, Any]) -> dict[str, Any]:
    known = {k: v for k, v in parameters.items() if k in session.default_settings}
    if isinstance(known.get("classes"), str):
        known["classes"] = [c.strip() for c in known["classes"].split(",") if c.strip()]
    return session.settings(known)


async def _infer(request: Request, session: ModelSession, parsed: InferRequest, stats: V2Stats) -> Response:
    t0 = time.perf_counter()
    settings = _settings(session, parsed.parameters)
    prepared, tensor = await _inputs(request, session, parsed)
    t_input = time.perf_counter() - t0
    raw_names = session.model.output_names
    post = postprocessed_names(session.card.task, raw_names)
    requested = parsed.outputs
    if requested is not None:
        unknown = [o.name for o in requested if o.name not in raw_names and o.name not in post]
        if unknown:
            raise InputError(f"unknown output {unknown[0]!r}; outputs are {', '.join([*raw_names, *post])}")
    wanted = [o.name for o in requested] if requested is not None else list(raw_names)
    timing: dict[str, float] = {}
    if prepared is not None:
        outs = await asyncio.gather(*(session.batcher.run(b.tensor, timing) for b in prepared))
        outputs = [np.concatenate(column) for column in zip(*outs, strict=True)]
        batch = Batch(
            np.concatenate([b.tensor for b in prepared]),
            [g for b in prepared for g in b.geometries],
            [name for b in prepared for name in b.names],
        )
    else:
        outputs = await session.batcher.run(tensor, timing)
        size = tuple(session.card.input.size[-2:])
        identity = Geometry(size, size, (1.0, 1.0), (0.0, 0.0))
        batch = Batch(tensor, [identity] * len(tensor), [""] * len(tensor))
    t1 = time.perf_counter()
    by_name = dict(zip(raw_names, outputs, strict=True))
    predictions = None
    if any(name in post for name in wanted):
        predictions = session.model.postprocess((outputs, batch), settings)
    results = []
    binary_default = bool(parsed.parameters.get("binary_data_output", False)) or parsed.raw is not None
    for name in wanted:
        array = by_name[name] if name in by_name else postprocessed(post[name], predictions, len(session.card.classes))
        choice = next((o.binary for o in requested or [] if o.name == name), None)
        results.append((name, array, binary_default if choice is None else choice))
    body, headers = encode_infer_response(session.name, VERSION, parsed.id, results)
    t_output = time.perf_counter() - t1
    n = len(batch.geometries)
    stats.inference_count += n
    row = stats.batches.setdefault(int(timing.get("batch", n)), [0, 0, 0, 0])
    row[0] += 1
    row[1] += int(t_input * 1e9)
    row[2] += int(timing.get("run", 0) * 1e9)
    row[3] += int(t_output * 1e9)
    V2Stats.add(stats.queue, timing.get("queue", 0.0))
    V2Stats.add(stats.compute_input, t_input)
    V2Stats.add(stats.compute_infer, timing.get("run", 0.0))
    V2Stats.add(stats.compute_output, t_output)
    return _respond(request, body, headers)


def _respond(request: Request, body: bytes, headers: dict[str, str]) -> Response:
    accept = request.headers.get("accept-encoding", "")
    if getattr(request.app.state, "v2_compress", False) and "gzip" in accept:
        body = gzip.compress(body)
        headers = {**headers, "Content-Encoding": "gzip"}
    media_type = headers.pop("Content-Type")
    return Response(body, media_type=media_type, headers=headers)


async def _inputs(
    request: Request, session: ModelSession, parsed: InferRequest
) -> tuple[list[Batch] | None, np.ndarray | None]:
    """Either decoded images (from `image_bytes` or a raw image body) or a ready tensor."""
    tensor_name = session.model.input_name
    if parsed.raw is not None:
        return await _raw_input(request, session, parsed.raw)
    by_name: dict[str, InputTensor] = {}
    for tensor in parsed.inputs:
        if tensor.name not in (tensor_name, IMAGE_INPUT):
            raise InputError(f"unknown input {tensor.name!r}; send {tensor_name!r} or {IMAGE_INPUT!r}")
        if tensor.name in by_name:
            raise InputError(f"input {tensor.name!r} is given twice")
        by_name[tensor.name] = tensor
    if len(by_name) != 1:
        raise InputError(f"send exactly one of {tensor_name!r} (a preprocessed tensor) and {IMAGE_INPUT!r}")
    if IMAGE_INPUT in by_name:
        encoded = by_name[IMAGE_INPUT]
        if (
            encoded.datatype != "BYTES"
            or encoded.array.ndim not in (1, 2)
            or (encoded.array.ndim == 2 and encoded.array.shape[1] != 1)
        ):
            raise InputError(f"{IMAGE_INPUT} must be BYTES of shape [N] or [N, 1]")
        elements = list(encoded.array.ravel())
        _check_batch(session, len(elements))

        def prepare(i: int, data: bytes) -> Batch:
            try:
                return session.prepare_image(data, f"image_bytes[{i}]")
            except InputError as exc:
                raise InputError(f"{IMAGE_INPUT}[{i}]: {exc}") from None

        batches = await asyncio.gather(*(asyncio.to_thread(prepare, i, bytes(d)) for i, d in enumerate(elements)))
        return list(batches), None
    return None, _check_tensor(session, by_name[tensor_name])


def _check_batch(session: ModelSession, n: int) -> None:
    limit = session.model.fixed_batch_size or session.batcher.max_batch_size
    if n < 1 or n > limit:
        raise InputError(f"batch size {n} is outside 1..{limit}")


def _check_tensor(session: ModelSession, tensor: InputTensor) -> np.ndarray:
    expected = _tensor_input(session)
    if tensor.datatype != expected["datatype"]:
        raise InputError(f"input {tensor.name}: datatype {tensor.datatype}, expected {expected['datatype']}")
    if len(tensor.shape) != len(expected["shape"]) or tensor.shape[1:] != expected["shape"][1:]:
        raise InputError(f"input {tensor.name}: shape {tensor.shape}, expected {expected['shape']}")
    _check_batch(session, tensor.shape[0])
    return np.ascontiguousarray(tensor.array, DATATYPES[tensor.datatype].newbyteorder("="))


async def _raw_input(
    request: Request, session: ModelSession, raw: bytes
) -> tuple[list[Batch] | None, np.ndarray | None]:
    """Raw mode (§8.4): a batch-1 tensor when the size says so, else one encoded image (4-byte prefix optional)."""
    expected = _tensor_input(session)
    dtype = DATATYPES[expected["datatype"]]
    shape = [1, *expected["shape"][1:]]
    if (
        not request.headers.get("content-type", "").startswith("image/")
        and len(raw) == int(np.prod(shape)) * dtype.itemsize
    ):
        return None, np.frombuffer(raw, dtype).reshape(shape).copy()
    if len(raw) > 4 and int.from_bytes(raw[:4], "little") == len(raw) - 4:
        raw = raw[4:]
    return [await asyncio.to_thread(session.prepare_image, raw, "body")], None


_UNIMPLEMENTED = [
    "/systemsharedmemory/{rest:path}",
    "/cudasharedmemory/{rest:path}",
    "/trace/{rest:path}",
    "/logging",
    "/models/{model}/generate",
]


async def _unimplemented(request: Request) -> None:
    raise NotImplementedEndpoint("this extension is not implemented by Fovea")


for _path in _UNIMPLEMENTED:
    router.add_api_route(_path, _unimplemented, methods=["GET", "POST"])
