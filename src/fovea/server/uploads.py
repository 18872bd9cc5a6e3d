"""Request body limits and multipart parsing with Fovea's limits."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Collection
from contextlib import aclosing
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fovea.core.io import Limits
from fovea.errors import InputError, LimitExceeded


class BodyTooLarge(LimitExceeded):
    """A request body passed its limit while streaming in."""


class BodyLimit:
    """Refuse request bodies over the limit with 413: by Content-Length up front, else as soon as the stream passes it.

    `max_bytes` holds on every route except the (method, path) pairs in `upload_routes`, which take
    `max_upload_bytes`: only uploads need large bodies, and a small default keeps every other route cheap to refuse.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        upload_routes: Collection[tuple[str, str]] = (),
        max_upload_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_routes = frozenset(upload_routes)
        self.max_upload_bytes = max_upload_bytes or max_bytes

    def limit_for(self, scope: Scope) -> int:
        is_upload = (scope["method"], scope["path"]) in self.upload_routes
        return self.max_upload_bytes if is_upload else self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"request body over the limit of {limit} bytes")
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            # Routes answer it in their dialect's shape; this catches the ones that let it through.
            if started:
                raise
            await _too_large(send, limit)


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
        async with aclosing(request.stream()) as stream:
            parser = _Utf8MultiPartParser(
                request.headers,
                stream,
                max_files=limits.max_files,
                max_fields=limits.max_files,
                max_part_size=limits.max_bytes,
            )
            return await parser.parse()
    except MultiPartException as exc:  # parse problems and Starlette's own limits
        if "Too many" in exc.message or "exceeded" in exc.message:
            raise LimitExceeded(exc.message) from None
        raise InputError(f"malformed multipart body: {exc.message}") from None


class _Utf8MultiPartParser(MultiPartParser):
    """Starlette's parser, refusing a text part that is not UTF-8 (Starlette would read it as Latin-1)."""

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                part.data.decode("utf-8")
            except UnicodeDecodeError:
                raise MultiPartException(f"form field {part.field_name!r} is not valid UTF-8") from None
        super().on_part_end()


async def read_files(form: FormData, field: str = "files") -> list[tuple[str, bytes]]:
    """(filename, bytes) of every `field` part, in upload order."""
    files = []
    for part in form.getlist(field):
        if not isinstance(part, UploadFile):
            raise InputError(f"form field {field!r} must be a file upload")
        files.append((part.filename or "", await part.read()))
    return files


# Copied a piece at a time: a video need not fit in memory.
SAVE_PIECE = 1 << 20


async def save_upload(part: UploadFile, suffix: str = "") -> Path:
    """An uploaded file's bytes in a new temporary file (the caller deletes it), copied in a worker thread.

    Starlette spools a part over 1 MiB to disk while the body streams in; this moves it to a file with a name
    that readers such as PyAV can open, never holding more than a piece of it in memory.
    """

    def copy() -> Path:
        part.file.seek(0)
        with tempfile.NamedTemporaryFile(prefix="fovea-upload-", suffix=suffix, delete=False) as out:
            try:
                shutil.copyfileobj(part.file, out, SAVE_PIECE)
            except BaseException:
                Path(out.name).unlink(missing_ok=True)
                raise
        return Path(out.name)

    try:
        return await asyncio.to_thread(copy)
    finally:
        await part.close()


def parse_json(text: str | bytes, what: str, **options: Any) -> Any:
    """JSON from a client (`options` go to json.loads); InputError naming `what` when it is invalid or nested too
    deeply to parse. `NaN` and `Infinity`, which Python reads but JSON has not, are invalid: echoed back (FLaVor's
    image entries) they could not be written out again."""
    try:
        return json.loads(text, parse_constant=_not_json, **options)
    except ValueError:
        raise InputError(f"{what} is not valid JSON") from None
    except RecursionError:  # the parser recurses per level: a few thousand `[` exhaust the stack
        raise InputError(f"{what} is JSON nested too deeply") from None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")
