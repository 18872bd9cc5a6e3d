"""`datasets` and `datasets/{id}/images`."""

from __future__ import annotations

import json
from typing import Any

from anyio import from_thread
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from fovea.core.io import Limits
from fovea.platform import datasets
from fovea.platform.dataset_urls import archive_from_url
from fovea.platform.enums import TaskId
from fovea.platform.errors import InputError
from fovea.platform.models import User
from fovea.server.backend.deps import (
    DB,
    BackendRoute,
    CurrentUser,
    PathId,
    QueryId,
    database,
    int64,
    json_body,
    settings,
)
from fovea.server.backend.schemas.common import binary, form_body_schema, json_body_schema, parse_body
from fovea.server.backend.schemas.datasets import DatasetImage, DatasetItem, DatasetUpload

router = APIRouter(route_class=BackendRoute)

# A multipart form with the zip, or a JSON body naming a URL.
_upload_body = form_body_schema(DatasetUpload)
_upload_body["requestBody"]["content"]["application/json"] = {
    "schema": json_body_schema(DatasetUpload)["requestBody"]["content"]["application/json"]["schema"]
}


@router.get("/datasets")
def list_datasets(user: CurrentUser, db: DB, task_id: QueryId = None) -> list[DatasetItem]:
    return [DatasetItem.of(d) for d in datasets.list_datasets(db, user, task_id)]


@router.get("/datasets/{dataset_id}")
def get_dataset(dataset_id: PathId, user: CurrentUser, db: DB) -> DatasetItem:
    return DatasetItem.of(datasets.get_dataset(db, user, dataset_id))


@router.get("/datasets/{dataset_id}/images")
def dataset_images(
    dataset_id: PathId,
    request: Request,
    user: CurrentUser,
    db: DB,
    split: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[DatasetImage]:
    if offset < 0 or (limit is not None and limit < 0):
        raise InputError("offset and limit must not be negative")
    spec = datasets.spec_of(datasets.get_dataset(db, user, dataset_id), settings(request).storage_dir)
    return datasets.images(spec, split, offset, limit)


@router.get(
    "/datasets/{dataset_id}/images/{image_id}/thumbnail", response_class=Response, responses=binary("image/jpeg")
)
def dataset_thumbnail(
    dataset_id: PathId, image_id: PathId, request: Request, user: CurrentUser, db: DB, size: int = 160
) -> Response:
    """A small JPEG of one image, for browsing (the console's dataset view)."""
    dataset = datasets.get_dataset(db, user, dataset_id)
    data = datasets.thumbnail(dataset, settings(request).storage_dir, image_id, size)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.post("/datasets", status_code=201, openapi_extra=_upload_body)
async def create_dataset(request: Request, user: CurrentUser) -> DatasetItem:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        fields, archive = await _upload(request)
    else:
        fields, archive = await _by_url(request)
    # Extracting and checking the archive takes seconds: in a worker thread, so other requests go on meanwhile.
    return await run_in_threadpool(_create_dataset, request, user, parse_body(DatasetUpload, fields).dataset(), archive)


def _create_dataset(request: Request, user: User, fields: datasets.NewDataset, archive: bytes) -> DatasetItem:
    dataset = datasets.create_dataset(database(request), user, fields, archive, settings(request).storage_dir)
    return DatasetItem.of(dataset)


async def _by_url(request: Request) -> tuple[dict[str, Any], bytes]:
    """JSON with `path`, an http(s) URL of a zip archive or of a dataset YAML (reference §7)."""
    fields = await json_body(request)
    url = fields.get("path")
    if not isinstance(url, str) or not url:
        raise InputError("send a zip archive as multipart `dataset_data`, or JSON with `path` (an http(s) URL)")
    config = settings(request)
    limits = Limits(allow_private_hosts=tuple(config.allow_url_hosts))
    archive = await run_in_threadpool(
        archive_from_url,
        url,
        limits,
        max_total_bytes=config.max_upload_bytes,
        segmentation=fields.get("task_id") == TaskId.SEGMENTATION,
    )
    return fields, archive


async def _upload(request: Request) -> tuple[dict[str, Any], bytes]:
    form = await request.form()
    fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        fields["users"] = json.loads(fields["users"]) if "users" in fields else None
    except (ValueError, RecursionError):
        raise InputError("users must be a JSON string") from None
    fields["task_id"] = int64(fields["task_id"], "task_id") if "task_id" in fields else None
    if "public" in fields:
        fields["public"] = fields["public"].lower() in ("true", "1")
    upload = form.get("dataset_data")
    if not isinstance(upload, UploadFile):
        raise InputError("dataset_data (a zip archive) is required")
    return fields, await upload.read()


@router.delete("/datasets/{dataset_id}", status_code=204)
def delete_dataset(dataset_id: PathId, request: Request, user: CurrentUser) -> Response:
    datasets.delete_dataset(database(request), user, dataset_id, settings(request).storage_dir)
    from_thread.run_sync(request.app.state.sessions.forget_dataset, dataset_id)  # no session keeps its images
    return Response(status_code=204)
