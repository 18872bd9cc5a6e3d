"""The KServe V2 / Open Inference Protocol with Triton's binary, config, statistics and repository
extensions (reference/open-inference-protocol.md). Errors are `{"error": ...}`; success is exactly 200.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from fovea import __version__
from fovea.errors import Forbidden, InputError, NotFound
from fovea.server.dialects.v2_infer import read_infer_request, run_infer
from fovea.server.dialects.v2_model import (
    IMAGE_INPUT,
    VERSION,
    batch_limit,
    model_input,
    model_outputs,
    platform,
    raw_output_names,
)
from fovea.server.dialects.v2_outputs import postprocessed_names
from fovea.server.dialects.v2_stats import V2Stats
from fovea.server.errors import NotImplementedEndpoint, NotReady, dialect_route
from fovea.sessions.custom import AnySession, CustomSession

EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics", "model_repository", "parameters"]


def render_error(status: int, message: str, detail: Any, headers: dict[str, str]) -> Response:
    return JSONResponse({"error": message}, status, headers=headers)


router = APIRouter(prefix="/v2", route_class=dialect_route(render_error))


def _session(request: Request) -> AnySession:
    return request.app.state.session


def _stats(request: Request) -> V2Stats:
    state = request.app.state
    if getattr(state, "v2_stats", None) is None:
        state.v2_stats = V2Stats()
    return state.v2_stats


def _check_model(session: AnySession, model: str, version: str | None = None) -> None:
    if model != session.name or (version is not None and version != VERSION):
        raise NotFound(f"Request for unknown model: '{model}' is not found")


def _loaded(request: Request) -> bool:
    return not getattr(request.app.state, "unloaded", False) and _session(request).running


# -- inference (first: FastAPI matches routes in order, and this is the hot path) -----------------


@router.post("/models/{model}/versions/{version}/infer")
@router.post("/models/{model}/infer")  # the innermost decorator registers first: tritonclient's default path
async def infer(request: Request, model: str, version: str | None = None) -> Response:
    session = _session(request)
    _check_model(session, model, version)
    stats = _stats(request)
    started = time.perf_counter()
    try:
        if not _loaded(request):
            raise NotReady("the model is not loaded")
        parsed = await read_infer_request(request, session.limits.max_bytes)
        response = await run_infer(request, session, parsed, stats)
    except Exception:
        stats.add(stats.fail, time.perf_counter() - started)
        raise
    stats.add(stats.success, time.perf_counter() - started)
    stats.last_inference = int(time.time() * 1000)
    return response


# -- shapes the model advertises ------------------------------------------------------------------


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
    return {"model_stats": [_stats(request).as_json(session.name, session.runs)]}


@router.get("/models/{model}")
@router.get("/models/{model}/versions/{version}")
async def model_metadata(request: Request, model: str, version: str | None = None) -> dict[str, Any]:
    session = _session(request)
    _check_model(session, model, version)
    raw = raw_output_names(session)
    return {
        "name": session.name,
        "versions": [VERSION],
        "platform": platform(session),
        "inputs": [model_input(session)],
        "outputs": model_outputs(session),
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
    max_batch = batch_limit(session)
    tensor = model_input(session)
    layout = None if isinstance(session, CustomSession) else session.card.input.layout
    kind = {"cpu": "KIND_CPU", "cuda": "KIND_GPU", None: "KIND_MODEL"}[session.device]
    config: dict[str, Any] = {
        "name": session.name,
        "platform": platform(session),
        "backend": session.runtime,
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
            for o in model_outputs(session)
        ],
        "version_policy": {"latest": {"num_versions": 1}},
        # Triton's word for engine runs that may go side by side: the batcher's workers.
        "instance_group": [{"name": session.name, "kind": kind, "count": session.workers}],
    }
    if max_batch > 1:
        config["dynamic_batching"] = {}
    return config


@router.get("/models/{model}/stats")
@router.get("/models/{model}/versions/{version}/stats")
async def model_stats(request: Request, model: str, version: str | None = None) -> dict[str, Any]:
    session = _session(request)
    _check_model(session, model, version)
    return {"model_stats": [_stats(request).as_json(session.name, session.runs)]}


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
        raise Forbidden("loading and unloading this model needs its owner's token")


@router.post("/repository/models/{model}/load")
async def load_model(request: Request, model: str) -> Response:
    session = _session(request)
    try:
        _check_model(session, model)
    except NotFound:
        raise InputError(f"failed to load '{model}': no such model") from None
    _check_repository_control(request)
    body = await _json_body(request)
    config = (body.get("parameters") or {}).get("config")
    if config is not None:
        try:
            overrides = json.loads(config)
        except (TypeError, ValueError):
            raise InputError("failed to load: parameters.config is not a JSON string") from None
        if isinstance(session, CustomSession):
            raise InputError("failed to load: a custom model's config cannot be changed")
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
    await _session(request).aclose()
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
