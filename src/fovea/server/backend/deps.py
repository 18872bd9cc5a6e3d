"""Shared pieces of the back-end routes: the error shape, the caller, strict JSON bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from fovea.platform.auth import AuthService
from fovea.platform.config import PlatformSettings
from fovea.platform.db import Database
from fovea.platform.errors import InputError
from fovea.platform.models import User
from fovea.server.errors import dialect_route


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


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, parsed strictly (the tutorials' trailing commas are a 400)."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise InputError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    return body
