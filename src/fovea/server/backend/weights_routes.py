"""`weights` and `weightsDownload`."""

from __future__ import annotations

import json
from typing import Any

from anyio import from_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from fovea.platform import trainings, weights
from fovea.platform.datasets import get_dataset
from fovea.platform.errors import InputError, NotFound
from fovea.platform.models import User
from fovea.server.backend.deps import (
    DB,
    BackendRoute,
    CurrentUser,
    JsonBody,
    PathId,
    QueryId,
    database,
    int64,
    json_body,
    settings,
)
from fovea.server.backend.schemas.common import binary, form_body_schema, json_body_schema, parse_body
from fovea.server.backend.schemas.weights import (
    DownloadStatus,
    WeightsCreated,
    WeightsFields,
    WeightsItem,
    WeightsUpload,
)

router = APIRouter(route_class=BackendRoute)

# A multipart form with the file, or a JSON body naming a URL.
_upload_body = form_body_schema(WeightsUpload)
_upload_body["requestBody"]["content"]["application/json"] = {
    "schema": json_body_schema(WeightsUpload)["requestBody"]["content"]["application/json"]["schema"]
}


@router.get("/weights")
def list_weights(
    user: CurrentUser,
    db: DB,
    model_id: QueryId = None,
    dataset_id: QueryId = None,
    include_inactive: bool = False,
) -> list[WeightsItem]:
    if model_id is None:
        raise InputError("Missing required parameter `model_id`")
    found = weights.list_weights(db, user, model_id, include_inactive)
    if dataset_id is not None:  # only the weights the fine-tuning rules accept for that (visible) dataset
        found = trainings.usable_on(db, found, get_dataset(db, user, dataset_id))
    return [WeightsItem.of(w) for w in found]


@router.get("/weights/{weights_id}")
def get_weights(weights_id: PathId, user: CurrentUser, db: DB) -> WeightsItem:
    return WeightsItem.of(weights.get_weights(db, user, weights_id))


async def _upload_fields(request: Request) -> tuple[weights.NewWeights, bytes | None]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return parse_body(WeightsUpload, await json_body(request)).weights(), None
    form = await request.form()
    fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    for key in ("model_id", "dataset_id"):
        if key in fields:
            fields[key] = int64(fields[key], key)
    if "users" in fields:
        try:
            fields["users"] = json.loads(fields["users"])
        except (ValueError, RecursionError):
            raise InputError("users must be a JSON string") from None
    upload = form.get("onnx_data")
    data = await upload.read() if isinstance(upload, UploadFile) else None
    return parse_body(WeightsUpload, fields).weights(), data


@router.post(
    "/weights",
    status_code=201,
    response_model_exclude_none=True,  # process_id only for a URL upload
    openapi_extra=_upload_body,
)
async def create_weights(request: Request, user: CurrentUser) -> WeightsCreated:
    fields, data = await _upload_fields(request)
    has_url = bool(fields.onnx_url)
    if data is None and not has_url:
        raise InputError("At least one between `onnx_url` and `onnx_data` fields is needed.")
    if data is not None and has_url:
        raise InputError("Send only one of `onnx_url` and `onnx_data`.")
    # ONNX validation takes seconds on a large model: in a worker thread, so other requests go on meanwhile.
    return await run_in_threadpool(_create_weights, request, user, fields, data)


def _create_weights(request: Request, user: User, fields: weights.NewWeights, data: bytes | None) -> WeightsCreated:
    config = settings(request)
    created = weights.create_weights(database(request), user, fields, data, config.storage_dir)
    if created.process_id is None:
        return WeightsCreated(weight_id=created.id)
    executor = request.app.state.executor
    executor.submit_download(created.process_id, database(request).url, config.storage_dir, config.allow_url_hosts)
    return WeightsCreated(weight_id=created.id, process_id=created.process_id)


@router.get("/weightsStatus", responses={200: {"model": DownloadStatus}, 404: {"model": DownloadStatus}})
def weights_status(user: CurrentUser, db: DB, process_id: str | None = None) -> Response:
    if not process_id:
        raise InputError("Missing required parameter `process_id`")
    try:
        return JSONResponse(weights.download_status(db, user, process_id))
    except NotFound:
        return JSONResponse({"result": "Process stopped before finishing or non existing."}, 404)


@router.put("/weights/{weights_id}", openapi_extra=json_body_schema(WeightsFields))
def replace_weights(weights_id: PathId, request: Request, user: CurrentUser, db: DB, body: JsonBody) -> WeightsItem:
    storage, changes = settings(request).storage_dir, parse_body(WeightsFields, body).changes()
    return WeightsItem.of(weights.update_weights(db, user, weights_id, changes, partial=False, storage=storage))


@router.patch("/weights/{weights_id}", openapi_extra=json_body_schema(WeightsFields))
def patch_weights(weights_id: PathId, request: Request, user: CurrentUser, db: DB, body: JsonBody) -> WeightsItem:
    storage, changes = settings(request).storage_dir, parse_body(WeightsFields, body).changes()
    return WeightsItem.of(weights.update_weights(db, user, weights_id, changes, partial=True, storage=storage))


@router.delete("/weights/{weights_id}", status_code=204)
def delete_weights(weights_id: PathId, request: Request, user: CurrentUser) -> Response:
    weights.delete_weights(database(request), user, weights_id, settings(request).storage_dir)
    from_thread.run_sync(request.app.state.sessions.forget_weights, weights_id)  # its sessions' models unload
    return Response(status_code=204)


@router.get("/weightsDownload", response_class=Response, responses=binary("application/octet-stream"))
def download(request: Request, user: CurrentUser, db: DB, modelweights_id: QueryId = None) -> Response:
    if modelweights_id is None:
        raise InputError("Missing required parameter `modelweights_id`")
    path, name = weights.download(db, user, modelweights_id, settings(request).storage_dir)
    return FileResponse(path, media_type="application/octet-stream", filename=name)
