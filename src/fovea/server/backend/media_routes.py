"""`videos`: uploads that deployed sessions run on by id (the Supervisely dialect's `videoId`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from fovea.platform import media
from fovea.platform.errors import InputError
from fovea.platform.models import User
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, PathId, database, settings
from fovea.server.backend.schemas.common import form_body_schema
from fovea.server.backend.schemas.media import VideoItem, VideoUpload

router = APIRouter(route_class=BackendRoute)


@router.post("/videos", status_code=201, openapi_extra=form_body_schema(VideoUpload))
async def upload_video(request: Request, user: CurrentUser) -> VideoItem:
    form = await request.form()
    upload = form.get("video_data")
    if not isinstance(upload, UploadFile):
        raise InputError("video_data (a video file) is required")
    # Checking the video (probing its frames) takes time: in a worker thread, so other requests go on meanwhile.
    return await run_in_threadpool(_create_video, request, user, upload.filename or "", await upload.read())


def _create_video(request: Request, user: User, filename: str, data: bytes) -> VideoItem:
    return VideoItem.of(media.create_video(database(request), user, filename, data, settings(request).storage_dir))


@router.get("/videos")
def list_videos(user: CurrentUser, db: DB) -> list[VideoItem]:
    return [VideoItem.of(v) for v in media.list_videos(db, user)]


@router.delete("/videos/{video_id}", status_code=204)
def delete_video(video_id: PathId, request: Request, user: CurrentUser) -> Response:
    media.delete_video(database(request), user, video_id, settings(request).storage_dir)
    return Response(status_code=204)
