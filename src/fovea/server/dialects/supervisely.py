"""The Supervisely serving protocol (reference/supervisely-session-protocol.md).

What `sly.nn.inference.Session` and `ModelAPI` speak: every endpoint is a POST answering 200 + JSON;
errors are `{"success": false, "message": ..., "detail": ...}`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from fovea.core.formats import supervisely_project_meta, to_supervisely_annotation
from fovea.core.io import Image, fetch_url, iter_frames, probe_video, sniff, video_frame_indices
from fovea.core.io.video import VIDEO_SUFFIXES
from fovea.errors import InputError, NotFound
from fovea.server.errors import NotImplementedEndpoint, dialect_route
from fovea.server.uploads import parse_json, read_files, read_form, save_upload
from fovea.sessions.custom import AnySession
from fovea.sessions.requests import AsyncRequest

from .supervisely_info import deploy_info, memory_status, session_info
from .supervisely_requests import (
    SYNC_VIDEO_MAX_FRAMES,
    default_settings,
    first,
    request_settings,
    result_dict,
    video_request,
)

T = TypeVar("T")


def render_error(status: int, message: str, detail: Any, headers: dict[str, str]) -> Response:
    body = {"success": False, "message": message, "detail": detail if detail is not None else message}
    return JSONResponse(body, status, headers=headers)


router = APIRouter(route_class=dialect_route(render_error))


def _session(request: Request) -> AnySession:
    return request.app.state.session


async def _state(request: Request) -> dict[str, Any]:
    """`state` of a JSON body, leniently: a missing body, `{}`, or `state: null` are all `{}`."""
    raw = await request.body()
    if not raw.strip():
        return {}
    body = parse_json(raw, "request body")
    state = body.get("state") if isinstance(body, dict) else None
    if state is not None and not isinstance(state, dict):
        raise InputError("state must be a JSON object")
    return state or {}


def _form_state(form: Any) -> dict[str, Any]:
    """Multipart calls: `state` if present and non-empty, else `settings`, else {}."""
    for field in ("state", "settings"):
        text = form.get(field)
        if isinstance(text, str) and text.strip() and text.strip() != "{}":
            value = parse_json(text, f"form field {field!r}")
            if not isinstance(value, dict):
                raise InputError(f"form field {field!r} must hold a JSON object")
            return value
    return {}


def _uuid(state: dict[str, Any]) -> str:
    value = state.get("inference_request_uuid")
    if not value:
        raise InputError("Error: 'inference_request_uuid' is required.")
    return str(value)


def _request(session: AnySession, state: dict[str, Any]) -> AsyncRequest:
    found = session.requests.get(_uuid(state))
    if found is None:
        raise NotFound("Error: 'inference_request_uuid' is not found.")
    return found


# -- info -------------------------------------------------------------------------------------------


@router.post("/get_session_info")
async def get_session_info(request: Request) -> dict[str, Any]:
    return session_info(_session(request))


@router.post("/get_custom_inference_settings")
async def get_custom_inference_settings(request: Request) -> dict[str, Any]:
    return {"settings": default_settings(_session(request))}


@router.post("/get_output_classes_and_tags")
@router.post("/get_model_meta")
async def get_output_classes_and_tags(request: Request) -> Response:
    # The client fetches this once per prediction: serve bytes built once per session.
    app_state = request.app.state
    if getattr(app_state, "sly_meta", None) is None:
        app_state.sly_meta = json.dumps(supervisely_project_meta(_session(request).card)).encode()
    return Response(app_state.sly_meta, media_type="application/json")


@router.post("/get_deploy_info")
async def get_deploy_info(request: Request) -> dict[str, Any]:
    return deploy_info(_session(request))


@router.api_route("/is_ready", methods=["GET", "POST"])
async def is_ready(request: Request) -> dict[str, Any]:
    if not _session(request).running:
        return render_error(503, "Service not ready", "Service not ready", {"Retry-After": "1"})
    return {"status": "ready"}


@router.post("/get_status")
async def get_status(request: Request) -> dict[str, Any]:
    deployed = _session(request).running
    message = "Ready" if deployed else "Not deployed"
    return {"is_deployed": deployed, "progress": {"message": message, "current": 0, "total": 1}, **memory_status()}


@router.post("/get_tracking_settings")
async def get_tracking_settings() -> dict[str, Any]:
    return {}


# -- synchronous inference ------------------------------------------------------------------------


async def _annotate(session: AnySession, data: bytes, name: str, settings: dict[str, Any]) -> dict[str, Any]:
    prediction = await session.predict_upload(data, name, settings)
    return await session.offload(to_supervisely_annotation, prediction, session.card)


@router.post("/inference_image")
async def inference_image(request: Request) -> dict[str, Any]:
    session = _session(request)
    form = await read_form(request, session.limits)
    files = await read_files(form)
    if len(files) != 1:
        raise InputError(f"Only one file expected but got {len(files)}")
    settings = request_settings(session, _form_state(form).get("settings"))
    name, data = files[0]
    return result_dict(await _annotate(session, data, name, settings), name)


@router.post("/inference_batch")
async def inference_batch(request: Request) -> list[dict[str, Any]]:
    session = _session(request)
    form = await read_form(request, session.limits)
    files = await read_files(form)
    if not files:
        raise InputError("at least one file expected in `files`")
    settings = request_settings(session, _form_state(form).get("settings"))
    annotations = await asyncio.gather(*(_annotate(session, data, name, settings) for name, data in files))
    return [result_dict(ann, name) for (name, _), ann in zip(files, annotations, strict=True)]


@router.post("/inference_image_url")
async def inference_image_url(request: Request) -> dict[str, Any]:
    session = _session(request)
    state = await _state(request)
    url = state.get("image_url")
    if not isinstance(url, str) or not url:
        raise InputError("image_url is required")
    settings = request_settings(session, state.get("settings"))
    data, name = await asyncio.to_thread(fetch_url, url, limits=session.limits)
    return result_dict(await _annotate(session, data, name, settings), url)


def _image_ids(state: dict[str, Any], *keys: str) -> list[int]:
    ids = first(state, *keys)
    if ids is None:
        raise InputError(f"{keys[0]} is required")
    ids = ids if isinstance(ids, list) else [ids]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InputError(f"{keys[0]} must hold integer ids")
    return ids


def _no_upload(state: dict[str, Any]) -> None:
    if state.get("upload") or state.get("output_project_id") is not None or state.get("upload_mode") is not None:
        raise InputError("uploading results to a Supervisely project is not supported")


async def _by_id(session: AnySession, image_id: int, settings: dict[str, Any]) -> dict[str, Any]:
    data, name = await asyncio.to_thread(session.resolve_image, image_id)
    return result_dict(await _annotate(session, data, name, settings), name, image_id=image_id)


@router.post("/inference_image_id")
async def inference_image_id(request: Request) -> dict[str, Any]:
    session, state = _session(request), await _state(request)
    _no_upload(state)
    [image_id] = _image_ids(state, "image_id", "imageId")[:1]
    return await _by_id(session, image_id, request_settings(session, state.get("settings")))


@router.post("/inference_batch_ids")
async def inference_batch_ids(request: Request) -> list[dict[str, Any]]:
    session, state = _session(request), await _state(request)
    _no_upload(state)
    ids = _image_ids(state, "batch_ids", "images_ids", "image_ids", "imageIds")
    settings = request_settings(session, state.get("settings"))
    return list(await asyncio.gather(*(_by_id(session, i, settings) for i in ids)))


def _video_frames(session: AnySession, data: bytes | Path, name: str, state: dict[str, Any]) -> list[int]:
    return video_frame_indices(probe_video(data, name=name), **video_request(state))


def _run_video(
    session: AnySession,
    job: AsyncRequest,
    source: bytes | Path,
    name: str,
    frames: list[int],
    settings: dict,
    **ids: Any,
) -> dict[str, Any]:
    """In the request's worker thread: the frames in batches through the session's batcher, results pushed in order."""
    frames_read = iter_frames(source, frames, name=name, limits=session.limits)
    chunks = _chunks(frames_read, session.config.max_batch_size, job)
    indices: list[int] = []

    def images() -> Iterator[list[Image]]:
        started = False
        for chunk in chunks:
            if not started:  # the first frames are decoded: from now on results come
                job.start(len(frames))
                started = True
            indices.extend(index for index, _ in chunk)
            yield [image for _, image in chunk]
        if not started:
            job.start(len(frames))

    done = 0
    for predictions in session.predict_images_blocking(images(), settings):
        for index, prediction in zip(indices[done : done + len(predictions)], predictions, strict=True):
            annotation = to_supervisely_annotation(prediction, session.card)
            job.push(result_dict(annotation, name, frame_index=index, **ids))
        done += len(predictions)
    return {"video_ann": None}


def _chunks(items: Iterable[T], size: int, job: AsyncRequest) -> Iterator[list[T]]:
    """`items` in lists of `size`; the client's stop is honoured before each list is handed on."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            job.check_stop()
            yield chunk
            chunk = []
    if chunk:
        job.check_stop()
        yield chunk


@router.post("/inference_video_id")
async def inference_video_id(request: Request) -> dict[str, Any]:
    session, state = _session(request), await _state(request)
    video_id = first(state, "videoId", "video_id")
    settings = request_settings(session, state.get("settings"))
    data, name = await asyncio.to_thread(session.resolve_video, video_id)
    frames = await asyncio.to_thread(_video_frames, session, data, name, state)
    if len(frames) > SYNC_VIDEO_MAX_FRAMES:
        raise InputError(
            f"{len(frames)} frames is over {SYNC_VIDEO_MAX_FRAMES} for a sync call; use /inference_video_id_async"
        )
    job = AsyncRequest("video")
    await asyncio.to_thread(_run_video, session, job, data, name, frames, settings, video_id=video_id)
    return {"ann": job.progress(pop=True)["pending_results"], "video_ann": None}


# -- asynchronous inference -----------------------------------------------------------------------


def _start(session: AnySession, kind: str, work: Any, message: str) -> dict[str, Any]:
    job = session.requests.create(kind)
    session.requests.run(job, work)
    return {"message": message, "inference_request_uuid": job.uuid}


@router.post("/inference_video_id_async")
async def inference_video_id_async(request: Request) -> dict[str, Any]:
    session, state = _session(request), await _state(request)
    video_id = first(state, "videoId", "video_id")
    settings = request_settings(session, state.get("settings"))
    data, name = await asyncio.to_thread(session.resolve_video, video_id)
    frames = await asyncio.to_thread(_video_frames, session, data, name, state)
    work = lambda job: _run_video(session, job, data, name, frames, settings, video_id=video_id)  # noqa: E731
    return _start(session, "video", work, "Inference has started.")


@router.post("/inference_video_async")
async def inference_video_async(request: Request) -> dict[str, Any]:
    """The video streams to a file on disk (a large one is never held in memory), which the request reads and
    then deletes; its received bytes are the request's preparing progress (`is_size`)."""
    session = _session(request)
    form = await read_form(request, session.limits)
    parts = form.getlist("files")
    if len(parts) != 1 or not isinstance(parts[0], UploadFile):
        raise InputError(f"Only one video file expected but got {len(parts)}")
    name = parts[0].filename or ""
    path = await save_upload(parts[0], suffix=Path(name).suffix.lower() if Path(name).suffix in VIDEO_SUFFIXES else "")
    try:
        state = _form_state(form)
        settings = request_settings(session, state.get("settings"))
        frames = await asyncio.to_thread(_video_frames, session, path, name, state)
        size = path.stat().st_size
    except BaseException:
        path.unlink(missing_ok=True)
        raise

    def work(job: AsyncRequest) -> dict[str, Any]:
        try:
            return _run_video(session, job, path, name, frames, settings)
        finally:
            path.unlink(missing_ok=True)

    job = session.requests.create("video")
    job.preparing(size, size, is_size=True)
    session.requests.run(job, work)
    return {"message": "Inference has started.", "inference_request_uuid": job.uuid}


def _run_images(
    session: AnySession, job: AsyncRequest, items: list[tuple[str, bytes, dict[str, Any]]], settings: dict
) -> None:
    """Decode lazily, one batch at a time, through the session's batcher: only a batch or two of decoded images is
    ever held, and a file that cannot be decoded fails the request when its batch comes, after the batches before
    it were delivered."""
    job.start(len(items))
    size = session.config.max_batch_size
    chunks = [items[start : start + size] for start in range(0, len(items), size)]

    def images() -> Iterator[list[Image]]:
        for chunk in chunks:
            job.check_stop()
            yield [_decoded(session, data, name) for name, data, _ in chunk]

    for chunk, predictions in zip(chunks, session.predict_images_blocking(images(), settings), strict=False):
        for (name, _, ids), prediction in zip(chunk, predictions, strict=True):
            job.push(result_dict(to_supervisely_annotation(prediction, session.card), name, **ids))


def _decoded(session: AnySession, data: bytes, name: str) -> Image:
    item = session.read(data, name)
    if not isinstance(item, Image):
        raise InputError(f"{name}: a volume cannot go through this endpoint")
    return item


def _check_kinds(named: list[tuple[str, bytes]]) -> None:
    """Before a request exists, refuse what is not an image at all (from its first bytes; nothing decoded)."""
    for name, data in named:
        kind = sniff(data, name)
        if kind == "unknown":
            raise InputError(f"{name}: unrecognised image format (expected PNG, JPEG, BMP, GIF, TIFF, WebP or DICOM)")
        if kind == "nifti":
            raise InputError(f"{name}: a volume cannot go through this endpoint")


@router.post("/inference_batch_async")
async def inference_batch_async(request: Request) -> dict[str, Any]:
    session = _session(request)
    form = await read_form(request, session.limits)
    files = await read_files(form)
    if not files:
        raise InputError("at least one file expected in `files`")
    state = _form_state(form)
    settings = request_settings(session, state.get("settings"))
    _check_kinds(files)
    items = [(name, data, {}) for name, data in files]
    return _start(session, "image", lambda job: _run_images(session, job, items, settings), "Scheduled inference task.")


@router.post("/inference_batch_ids_async")
async def inference_batch_ids_async(request: Request) -> dict[str, Any]:
    session, state = _session(request), await _state(request)
    _no_upload(state)
    ids = _image_ids(state, "images_ids", "batch_ids", "image_ids", "imageIds")
    settings = request_settings(session, state.get("settings"))
    named = [await asyncio.to_thread(session.resolve_image, i) for i in ids]
    _check_kinds([(name, data) for data, name in named])
    items = [(name, data, {"image_id": i}) for (data, name), i in zip(named, ids, strict=True)]
    return _start(session, "image", lambda job: _run_images(session, job, items, settings), "Scheduled inference task.")


@router.post("/get_inference_progress")
async def get_inference_progress(request: Request) -> dict[str, Any]:
    return _request(_session(request), await _state(request)).progress()


@router.post("/pop_inference_results")
async def pop_inference_results(request: Request) -> dict[str, Any]:
    return _request(_session(request), await _state(request)).progress(pop=True)


@router.post("/get_inference_status")
async def get_inference_status(request: Request) -> dict[str, Any]:
    progress = _request(_session(request), await _state(request)).progress()
    for key in ("pending_results", "final_result", "created_at", "updated_at"):
        progress.pop(key)
    return {**progress, **memory_status()}


@router.post("/get_inference_result")
async def get_inference_result(request: Request) -> Any:
    state = await _state(request)
    job = _session(request).requests.get(str(state.get("inference_request_uuid") or ""))
    if job is None:
        return None
    return job.final_result if job.kind == "video" else None


@router.post("/stop_inference")
async def stop_inference(request: Request) -> dict[str, Any]:
    state = await _state(request)
    job = _session(request).requests.get(str(state.get("inference_request_uuid") or ""))
    if job is not None:
        job.stop()
    return {"message": "Inference will be stopped.", "success": True}


@router.post("/clear_inference_request")
async def clear_inference_request(request: Request) -> dict[str, Any]:
    state = await _state(request)
    _session(request).requests.clear(str(state.get("inference_request_uuid") or ""))
    return {"success": True}


@router.post("/get_preparing_progress")
async def get_preparing_progress(request: Request) -> dict[str, Any]:
    state = await _state(request)
    job = _session(request).requests.get(str(state.get("inference_request_uuid") or ""))
    if job is None:  # the client polls until `status` is a string: an unknown or cleared request is over
        return {"status": "Finished", "current": 0, "total": 1, "is_size": False}
    return job.progress()["preparing_progress"]


_UNSUPPORTED = [
    "/inference_project_id_async",
    "/run_speedtest",
    "/tracking_by_detection",
    "/inference_image_id_async",
    "/deploy_from_api",
    "/get_deploy_settings",
    "/list_pretrained_models",
    "/list_pretrained_model_infos",
    "/freeze_model",
]


async def _unsupported(request: Request) -> None:
    raise NotImplementedEndpoint(f"{request.url.path.rsplit('/', 1)[-1]} is not supported by Fovea")


for _path in _UNSUPPORTED:
    router.add_api_route(_path, _unsupported, methods=["POST"])
# Every `/smart_cache*` endpoint (the SDK has several and adds more): one pattern, in whatever method.
router.add_api_route("/smart_cache{suffix:path}", _unsupported, methods=["GET", "POST"])
