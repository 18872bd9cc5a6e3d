"""Request body limits and multipart parsing with Fovea's limits."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fovea.core.io import Limits
from fovea.errors import InputError, LimitExceeded


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413: by Content-Length up front, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise LimitExceeded(f"request body over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)


async def _too_large(send: Send, limit: int) -> None:
    message = f"request body over the limit of {limit} bytes"
    # Before routing, so the body suits every dialect: V2 reads `error`, Supervisely `message`/`detail`.
    body = json.dumps({"error": message, "success": False, "message": message, "detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_form(request: Request, limits: Limits) -> FormData:
    """The multipart form, with file and field counts capped (more is 413)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InputError("expected a multipart/form-data request")
    try:
        return await request.form(
            max_files=limits.max_files, max_fields=limits.max_files, max_part_size=limits.max_bytes
        )
    except HTTPException as exc:  # Starlette reports parse problems and its own limits as 400
        if "Too many" in str(exc.detail) or "exceeded" in str(exc.detail):
            raise LimitExceeded(str(exc.detail)) from None
        raise InputError(f"malformed multipart body: {exc.detail}") from None


async def read_files(form: FormData, field: str = "files") -> list[tuple[str, bytes]]:
    """(filename, bytes) of every `field` part, in upload order."""
    files = []
    for part in form.getlist(field):
        if not isinstance(part, UploadFile):
            raise InputError(f"form field {field!r} must be a file upload")
        files.append((part.filename or "", await part.read()))
    return files


def json_field(form: FormData, name: str, default: Any = None) -> Any:
    """A text part holding JSON (the last one if repeated); InputError naming the field when invalid."""
    values = [v for v in form.getlist(name) if isinstance(v, str)]
    if not values:
        return default
    try:
        return json.loads(values[-1])
    except ValueError:
        raise InputError(f"form field {name!r} is not valid JSON") from None
