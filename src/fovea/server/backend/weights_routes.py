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

router = APIRouter(route_class=BackendRoute)


@router.get("/weights")
def list_weights(
    user: CurrentUser,
    db: DB,
    model_id: QueryId = None,
    dataset_id: QueryId = None,
    include_inactive: bool = False,
) -> list[dict[str, Any]]:
    if model_id is None:
        raise InputError("Missing required parameter `model_id`")
    found = weights.list_weights(db, user, model_id, include_inactive)
    if dataset_id is not None:  # only the weights the fine-tuning rules accept for that (visible) dataset
        found = trainings.usable_on(db, found, get_dataset(db, user, dataset_id))
    return [weights.weights_json(w) for w in found]


@router.get("/weights/{weights_id}")
def get_weights(weights_id: PathId, user: CurrentUser, db: DB) -> dict[str, Any]:
    return weights.weights_json(weights.get_weights(db, user, weights_id))


async def _upload_fields(request: Request) -> tuple[dict[str, Any], bytes | None]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await json_body(request), None
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
    return fields, await upload.read() if isinstance(upload, UploadFile) else None


@router.post("/weights", status_code=201)
async def create_weights(request: Request, user: CurrentUser) -> dict[str, Any]:
    fields, data = await _upload_fields(request)
    has_url = bool(fields.get("onnx_url"))
    if data is None and not has_url:
        raise InputError("At least one between `onnx_url` and `onnx_data` fields is needed.")
    if data is not None and has_url:
        raise InputError("Send only one of `onnx_url` and `onnx_data`.")
    # ONNX validation takes seconds on a large model: in a worker thread, so other requests go on meanwhile.
    return await run_in_threadpool(_create_weights, request, user, fields, data)


def _create_weights(request: Request, user: User, fields: dict[str, Any], data: bytes | None) -> dict[str, Any]:
    storage = settings(request).storage_dir
    created = None
    try:
        with database(request).transaction() as db:  # the file is written inside, removed if the commit fails
            created = weights.create_weights(db, db.merge(user), fields, data, storage)
            weights_id, download_id = created.id, created.process_id
    except Exception:
        if created is not None and created.id is not None:
            weights.file_path(storage, created.id).unlink(missing_ok=True)
        raise
    if download_id is None:
        return {"result": "ok", "weight_id": weights_id}
    config = settings(request)
    request.app.state.executor.submit_download(download_id, database(request).url, storage, config.allow_url_hosts)
    return {"result": "ok", "weight_id": weights_id, "process_id": download_id}


@router.get("/weightsStatus")
def weights_status(user: CurrentUser, db: DB, process_id: str | None = None) -> Response:
    if not process_id:
        raise InputError("Missing required parameter `process_id`")
    try:
        return JSONResponse(weights.download_status(db, user, process_id))
    except NotFound:
        return JSONResponse({"result": "Process stopped before finishing or non existing."}, 404)


@router.put("/weights/{weights_id}")
def replace_weights(weights_id: PathId, request: Request, user: CurrentUser, db: DB, body: JsonBody) -> dict[str, Any]:
    storage = settings(request).storage_dir
    return weights.weights_json(weights.update_weights(db, user, weights_id, body, partial=False, storage=storage))


@router.patch("/weights/{weights_id}")
def patch_weights(weights_id: PathId, request: Request, user: CurrentUser, db: DB, body: JsonBody) -> dict[str, Any]:
    storage = settings(request).storage_dir
    return weights.weights_json(weights.update_weights(db, user, weights_id, body, partial=True, storage=storage))


@router.delete("/weights/{weights_id}", status_code=204)
def delete_weights(weights_id: PathId, request: Request, user: CurrentUser) -> Response:
    with database(request).transaction() as db:
        path = weights.delete_weights(db, db.merge(user), weights_id, settings(request).storage_dir)
    path.unlink(missing_ok=True)  # only once the row is gone for good
    from_thread.run_sync(request.app.state.sessions.forget_weights, weights_id)  # its sessions' models unload
    return Response(status_code=204)


@router.get("/weightsDownload")
def download(request: Request, user: CurrentUser, db: DB, modelweights_id: QueryId = None) -> Response:
    if modelweights_id is None:
        raise InputError("Missing required parameter `modelweights_id`")
    path, name = weights.download(db, user, modelweights_id, settings(request).storage_dir)
    return FileResponse(path, media_type="application/octet-stream", filename=name)
