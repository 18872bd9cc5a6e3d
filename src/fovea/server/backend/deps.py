"""Shared pieces of the back-end routes: the error shape, the caller, strict JSON bodies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fovea.platform.auth import AuthService
from fovea.platform.config import PlatformSettings
from fovea.platform.db import Database
from fovea.platform.errors import InputError
from fovea.platform.models import User
from fovea.server.errors import dialect_route
from fovea.server.uploads import parse_json


def render_error(status: int, message: str, detail: Any, headers: dict[str, str]) -> Response:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status, headers=headers)


BackendRoute = dialect_route(render_error)


def database(request: Request) -> Database:
    return request.app.state.db


def settings(request: Request) -> PlatformSettings:
    return request.app.state.settings


def auth_service(request: Request) -> AuthService:
    return request.app.state.auth


def transaction(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back when it raises."""
    with database(request).transaction() as session:
        yield session


# Committed before the response is sent ("function" scope): a client that got 201 must find the row on its next call.
DB = Annotated[Session, Depends(transaction, scope="function")]


def current_user(request: Request, db: DB) -> User:
    return auth_service(request).authenticate(db, request.headers.get("authorization"))


CurrentUser = Annotated[User, Depends(current_user)]


# Ids are INTEGER columns (32-bit on PostgreSQL): a larger number names nothing, and the database drivers fail on it
# (a 500) if it gets that far. Other integers in JSON bodies are bounded to 64 bits, the widest column.
ID_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
PathId = Annotated[int, Path(ge=0, le=ID_MAX)]
QueryId = Annotated[int | None, Query(ge=0, le=ID_MAX)]


def int64(text: str, what: str = "an integer") -> int:
    """`text` as an integer that fits a 64-bit column, else InputError naming `what`."""
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{what} must be an integer") from None
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise InputError(f"{what} is out of range (64-bit integers only)")
    return value


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object, parsed strictly (the tutorials' trailing commas are a 400), with every integer 64-bit."""
    body = parse_json(raw or b"{}", "the request body", parse_int=lambda text: int64(text, "a JSON integer"))
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    return body


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (see parse_json_object), parsed off the event loop: bodies run to 64 MiB."""
    return await run_in_threadpool(parse_json_object, await request.body())


# Declare it after CurrentUser: dependencies resolve in order, so an anonymous caller's body is never read.
JsonBody = Annotated[dict[str, Any], Depends(json_body)]
