"""`auth/`: OAuth2 token and revocation, registration, the caller and the users list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from fovea.platform.errors import NotFound, OAuthError
from fovea.platform.models import User
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, JsonBody, PathId, auth_service
from fovea.server.backend.schemas.auth import OAuthProblem, Registration, RevokeForm, TokenForm, Tokens, UserItem
from fovea.server.backend.schemas.common import form_body_schema, json_body_schema, parse_body

router = APIRouter(prefix="/auth", route_class=BackendRoute)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


# The handlers are plain functions: FastAPI runs them in worker threads, away from the event loop, because
# password hashing (argon2) and the database take time that every other request would otherwise wait on.
FormFields = Annotated[dict[str, str], Depends(_form)]


@router.post(
    "/token",
    openapi_extra=form_body_schema(TokenForm, "application/x-www-form-urlencoded"),
    responses={200: {"model": Tokens}, 400: {"model": OAuthProblem}, 401: {"model": OAuthProblem}},
)
def token(request: Request, db: DB, form: FormFields) -> Response:
    try:
        issued = auth_service(request).token(db, form)
    except OAuthError as exc:
        body = {"error": exc.code, **({"error_description": exc.description} if exc.description else {})}
        return JSONResponse(body, exc.status)
    return JSONResponse(issued.as_json())


@router.post(
    "/revoke-token",
    status_code=204,
    openapi_extra=form_body_schema(RevokeForm, "application/x-www-form-urlencoded"),
    responses={204: {"description": "Revoked (also when the token was unknown)"}, 400: {"model": OAuthProblem}},
)
def revoke_token(request: Request, db: DB, form: FormFields) -> Response:
    try:
        auth_service(request).revoke(db, form.get("token"), form.get("client_id"))
    except OAuthError as exc:
        return JSONResponse({"error": exc.code}, exc.status)
    return Response(status_code=204)


@router.post("/user", status_code=201, openapi_extra=json_body_schema(Registration))
def register(request: Request, db: DB, body: JsonBody) -> UserItem:
    return UserItem.of(auth_service(request).register(db, parse_body(Registration, body).form()))


@router.get("/user")
def me(user: CurrentUser) -> UserItem:
    return UserItem.of(user)


@router.get("/users")
def users(user: CurrentUser, db: DB) -> list[UserItem]:
    rows = db.scalars(select(User).where(User.is_active).order_by(User.id))
    return [UserItem.of(row, user) for row in rows]


@router.get("/users/{user_id}")
def one_user(user_id: PathId, user: CurrentUser, db: DB) -> UserItem:
    row = db.get(User, user_id)
    if row is None or not row.is_active:
        raise NotFound(f"user {user_id} not found")
    return UserItem.of(row, user)
