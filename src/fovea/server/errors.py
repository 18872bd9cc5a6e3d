"""Mapping Fovea's errors to HTTP statuses, and routes that render errors in their dialect's shape.

Only exceptions raised on purpose map to client errors (Fovea's own tree, the framework's, and a few library
ones whose meaning is certain); anything else, built-ins included, is a bug: a logged 500 with no details.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from fovea.errors import (
    CardError,
    Conflict,
    Forbidden,
    FoveaError,
    InputError,
    LimitExceeded,
    NotFound,
    Unauthenticated,
)
from fovea.sessions.batcher import Closed, Overloaded

log = logging.getLogger("fovea.server")

# (status, message, detail, headers) -> response in a dialect's own error shape
Renderer = Callable[[int, str, Any, dict[str, str]], Response]


class NotReady(FoveaError):
    """The model is loading or unloaded (503: clients wait and retry)."""


class NotImplementedEndpoint(FoveaError):
    """An endpoint of a protocol extension Fovea does not implement (501)."""


def classify(exc: Exception) -> tuple[int, str, Any, dict[str, str]]:
    """(status, message, detail, headers) for an exception; unexpected ones are logged, never shown."""
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), None, dict(exc.headers or {})
    if isinstance(exc, RequestValidationError):
        detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return 400, "invalid request", detail, {}
    if isinstance(exc, LimitExceeded):
        return 413, str(exc), exc.detail, {}
    if isinstance(exc, MultiPartException):
        return 413 if "Too many" in str(exc) or "exceeded" in str(exc) else 400, str(exc), None, {}
    if isinstance(exc, InputError):
        return 400, str(exc), exc.detail, {}
    if isinstance(exc, CardError):
        return 400, str(exc), None, {}
    if isinstance(exc, NotFound):
        return 404, str(exc), None, {}
    if isinstance(exc, Forbidden):
        return 403, str(exc), None, {}
    if isinstance(exc, Conflict):
        return 409, str(exc), None, {}
    if isinstance(exc, Unauthenticated):
        return 401, str(exc), None, {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, Overloaded):
        return 503, str(exc), None, {"Retry-After": str(max(1, round(exc.retry_after)))}
    if isinstance(exc, (Closed, NotReady)):
        return 503, str(exc), None, {"Retry-After": "1"}
    if isinstance(exc, NotImplementedEndpoint):
        return 501, str(exc), None, {}
    if isinstance(exc, DataError):  # PostgreSQL refusing a value its column cannot hold (e.g. an id past 32 bits)
        return 400, "a value in the request is out of range", None, {}
    request_id = uuid.uuid4().hex[:12]
    log.exception("unexpected error (request %s)", request_id)
    return 500, "internal server error", {"request_id": request_id}, {}


def dialect_route(render: Renderer) -> type[APIRoute]:
    """An APIRoute class whose handlers answer every error in `render`'s shape (no tracebacks)."""

    class DialectRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    async with AsyncExitStack() as function_scope:
                        # FastAPI exits function-scoped dependencies (the DB transaction) after the handler
                        # returns; giving them a scope inside this `try` lets them see the exception and roll
                        # back, instead of committing the writes made before it (the rendered answer is no error).
                        request.scope["fastapi_function_astack"] = function_scope
                        return await handler(request)
                except Exception as exc:  # every failure becomes a dialect-shaped answer
                    return render(*classify(exc))

            return guarded

    return DialectRoute


def install_http_error_handler(app: FastAPI) -> None:
    """404/405 outside any route, in a shape every dialect's clients can read."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = str(exc.detail)
        # V2 clients read `error`, Supervisely clients `message`/`detail`: one body serves all of them.
        body = {"error": message, "success": False, "message": message, "detail": message}
        return JSONResponse(body, exc.status_code, headers=dict(exc.headers or {}))
