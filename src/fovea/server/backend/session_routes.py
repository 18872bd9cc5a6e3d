"""`sessions`: deploy weights at a capability URL, list, read, change settings, delete."""

from __future__ import annotations

from anyio import from_thread
from fastapi import APIRouter, Request, Response

from fovea.platform import deployments
from fovea.platform.models import DeployedSession
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, JsonBody, PathId, database, settings
from fovea.server.backend.schemas.common import json_body_schema
from fovea.server.backend.schemas.sessions import SessionCreateRequest, SessionItem, SessionPatchRequest

router = APIRouter(route_class=BackendRoute)


def _item(request: Request, record: DeployedSession) -> SessionItem:
    secret = deployments.server_secret(settings(request).home)
    token = deployments.derive_token(secret, record.nonce)
    runtime = request.app.state.sessions.state_of(record.id)
    return SessionItem.of(record, token, str(request.base_url), runtime)


@router.post("/sessions", status_code=201, openapi_extra=json_body_schema(SessionCreateRequest))
def create_session(request: Request, user: CurrentUser, db: DB, body: JsonBody) -> SessionItem:
    secret = deployments.server_secret(settings(request).home)
    record, _ = deployments.create(db, user, SessionCreateRequest.model_validate(body).order(), secret)
    return _item(request, record)


@router.get("/sessions")
def list_sessions(request: Request, user: CurrentUser, db: DB) -> list[SessionItem]:
    return [_item(request, r) for r in deployments.list_owned(db, user)]


@router.get("/sessions/{session_id}")
def get_session(session_id: PathId, request: Request, user: CurrentUser, db: DB) -> SessionItem:
    return _item(request, deployments.owned(db, user, session_id))


@router.patch("/sessions/{session_id}", openapi_extra=json_body_schema(SessionPatchRequest))
def patch_session(session_id: PathId, request: Request, user: CurrentUser, db: DB, body: JsonBody) -> SessionItem:
    defaults = SessionPatchRequest.model_validate(body).settings
    return _item(request, deployments.update_settings(db, user, session_id, defaults))


@router.delete("/sessions/{session_id}", status_code=204)
def delete_session(session_id: PathId, request: Request, user: CurrentUser) -> Response:
    deployments.delete(database(request), user, session_id)
    from_thread.run_sync(request.app.state.sessions.forget, session_id)  # the loaded sessions live on the loop
    return Response(status_code=204)
