"""`inference`, `inferenceSingle`, `status`, `output(s)`, `media` and `stopProcess`."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from fovea.core.card import ModelCard
from fovea.core.formats import FORMATS, format_predictions, from_canonical
from fovea.core.io import Limits
from fovea.platform import processes
from fovea.platform.datasets import process_input, thumbnail
from fovea.platform.enums import ProcessState, ProcessType
from fovea.platform.errors import InputError, NotFound
from fovea.platform.models import Weights
from fovea.platform.storage import process_outputs
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, JsonBody, PathId, QueryId, database, settings
from fovea.server.backend.schemas.common import binary, json_body_schema, parse_body
from fovea.server.backend.schemas.processes import (
    InferenceRequest,
    InferenceSingleRequest,
    Output,
    ProcessCreated,
    ProcessItem,
    ProcessResult,
    StatusEntry,
    StatusNotFound,
    StopRequest,
)

router = APIRouter(route_class=BackendRoute)


def jobs(request: Request) -> processes.JobQueue:
    return request.app.state.executor


def url_limits(request: Request) -> Limits:
    """What a client's `image_url` may reach (the URL policy)."""
    return Limits(allow_private_hosts=tuple(settings(request).allow_url_hosts))


@router.post("/inference", status_code=201, openapi_extra=json_body_schema(InferenceRequest))
def inference(request: Request, user: CurrentUser, body: JsonBody) -> ProcessCreated:
    order = parse_body(InferenceRequest, body).order()
    storage = settings(request).storage_dir
    return ProcessCreated(process_id=processes.launch_inference(database(request), user, order, storage, jobs(request)))


@router.post("/inferenceSingle", status_code=201, openapi_extra=json_body_schema(InferenceSingleRequest))
def inference_single(request: Request, user: CurrentUser, body: JsonBody) -> ProcessCreated:
    """A plain function, so in a worker thread: fetching `image_url` may take seconds."""
    order = parse_body(InferenceSingleRequest, body).order()
    storage, limits = settings(request).storage_dir, url_limits(request)
    return ProcessCreated(
        process_id=processes.launch_single(database(request), user, order, storage, limits, jobs(request))
    )


@router.get("/inference")
@router.get("/inferenceSingle")
def list_inferences(user: CurrentUser, db: DB, project_id: QueryId = None) -> list[ProcessItem]:
    if project_id is None:
        raise InputError("Missing required parameter `project_id`")
    return [ProcessItem.of(p) for p in processes.list_inferences(db, user, project_id)]


@router.get("/status", response_model=list[StatusEntry], responses={404: {"model": StatusNotFound}})
def status(user: CurrentUser, db: DB, process_id: str | None = None, full: bool = False) -> Response:
    if not process_id:
        raise InputError("Missing required parameter `process_id`")
    try:
        process = processes.get_process(db, user, process_id)
    except NotFound:
        return JSONResponse({"result": "error", "error": "Process not found"}, 404)
    lines = processes.lines(db, process)
    data: Any = lines if full else (lines[-1] if lines else "")
    result = "error" if process.state == ProcessState.FAILED else "ok"
    kind = ProcessType.TRAINING if process.process_type == ProcessType.TRAINING else ProcessType.INFERENCE
    return JSONResponse(
        [{"result": result, "status": {"process_type": kind, "process_status": process.state, "process_data": data}}]
    )


@router.get("/output", response_model=Output, responses={404: {"model": ProcessResult}})
@router.get("/outputs", response_model=Output, responses={404: {"model": ProcessResult}})
def output(
    request: Request, user: CurrentUser, db: DB, process_id: str | None = None, format: str | None = None
) -> Response:
    if not process_id:
        raise InputError("Missing required parameter `process_id`")
    try:
        process = processes.get_process(db, user, process_id)
    except NotFound:
        process = None
    if process is None or process.state in (ProcessState.STOPPED, ProcessState.FAILED):
        return JSONResponse({"result": "Process stopped before finishing or non existing."}, 404)
    if process.process_type == ProcessType.TRAINING:
        raise InputError("output is for inference processes; this is a training")
    if process.state != ProcessState.FINISHED:
        return JSONResponse({"result": "Process in execution. Try later for output results."})
    stored = json.loads((process_outputs(settings(request).storage_dir, process.id) / "outputs.json").read_text())
    if format is None:
        base = str(request.base_url).rstrip("/") + "/backend/"
        rows = [[name, value if not value.startswith("media/") else base + value] for name, value in stored["outputs"]]
        return JSONResponse({"outputs": rows})
    if format == "json":  # canonical predictions, as stored
        return JSONResponse({"predictions": stored["predictions"], "classes": stored["classes"]})
    if format not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}")
    weights = db.get(Weights, process.weights_id) if process.weights_id else None
    if weights is None or weights.card is None:
        raise InputError("these weights have no model card, so other formats are not available")
    card = ModelCard.from_json(weights.card)
    predictions = [from_canonical(p, card.class_names) for p in stored["predictions"]]
    try:
        return JSONResponse(format_predictions(predictions, format, card))
    except ValueError as exc:
        raise InputError(f"format {format} does not apply: {exc}") from None


@router.get("/media/{process_id}/{image_id}.png", response_class=Response, responses=binary("image/png"))
def media(process_id: str, image_id: PathId, request: Request, user: CurrentUser, db: DB) -> Response:
    return _mask(request, user, db, process_id, f"{image_id}.png", "image/png")


@router.get("/media/{process_id}/{image_id}.nii.gz", response_class=Response, responses=binary("application/gzip"))
def volume_media(process_id: str, image_id: PathId, request: Request, user: CurrentUser, db: DB) -> Response:
    """A volume's mask: gzipped NIfTI-1 with the scan's affine, class indices as for PNG masks."""
    return _mask(request, user, db, process_id, f"{image_id}.nii.gz", "application/gzip", download=True)


def _mask(
    request: Request, user: Any, db: Any, process_id: str, name: str, media_type: str, *, download: bool = False
) -> Response:
    process = processes.get_process(db, user, process_id)
    path = process_outputs(settings(request).storage_dir, process.id) / name
    if process.state != ProcessState.FINISHED or not path.is_file():
        raise NotFound("no such mask")
    return FileResponse(path, media_type=media_type, filename=name if download else None)


@router.get(
    "/processes/{process_id}/images/{image_id}/thumbnail", response_class=Response, responses=binary("image/jpeg")
)
def process_image(
    process_id: str, image_id: PathId, request: Request, user: CurrentUser, db: DB, size: int = 160
) -> Response:
    """An input image of a process as the server decoded it (the console draws results over it), as a JPEG."""
    process = processes.get_process(db, user, process_id)
    dataset = process_input(db, user, process.dataset_id)  # a project viewer may not see a private dataset
    data = thumbnail(dataset, settings(request).storage_dir, image_id, size)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.post(
    "/stopProcess",
    response_model=ProcessResult,
    responses={404: {"model": ProcessResult}},
    openapi_extra=json_body_schema(StopRequest),
)
def stop_process(request: Request, user: CurrentUser, body: JsonBody) -> Response:
    process_id = parse_body(StopRequest, body).process_id
    try:
        result = processes.stop(database(request), user, process_id, settings(request).storage_dir)
    except NotFound:
        return JSONResponse({"result": "Process already stopped or non existing"}, 404)
    return JSONResponse({"result": result})
