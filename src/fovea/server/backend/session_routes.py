"""`sessions`: deploy weights at a capability URL, list, read, change settings, delete."""

from __future__ import annotations

from typing import Any

from anyio import from_thread
from fastapi import APIRouter, Request, Response

from fovea.platform import deployments
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, JsonBody, PathId, settings

router = APIRouter(route_class=BackendRoute)


def _item(request: Request, record: Any) -> dict[str, Any]:
    secret = deployments.server_secret(settings(request).home)
    token = deployments.derive_token(secret, record.nonce)
    runtime = request.app.state.sessions.state_of(record.id)
    return deployments.session_json(record, token, str(request.base_url), runtime)


@router.post("/sessions", status_code=201)
def create_session(request: Request, user: CurrentUser, db: DB, body: JsonBody) -> dict[str, Any]:
    secret = deployments.server_secret(settings(request).home)
    record, _ = deployments.create(db, user, body, secret)
    return _item(request, record)


@router.get("/sessions")
def list_sessions(request: Request, user: CurrentUser, db: DB) -> list[dict[str, Any]]:
    return [_item(request, r) for r in deployments.list_owned(db, user)]


@router.get("/sessions/{session_id}")
def get_session(session_id: PathId, request: Request, user: CurrentUser, db: DB) -> dict[str, Any]:
    return _item(request, deployments.owned(db, user, session_id))


@router.patch("/sessions/{session_id}")
def patch_session(session_id: PathId, request: Request, user: CurrentUser, db: DB, body: JsonBody) -> dict[str, Any]:
    return _item(request, deployments.update_settings(db, user, session_id, body))


@router.delete("/sessions/{session_id}", status_code=204)
def delete_session(session_id: PathId, request: Request, user: CurrentUser, db: DB) -> Response:
    db.delete(deployments.owned(db, user, session_id))
    from_thread.run_sync(request.app.state.sessions.forget, session_id)  # the loaded sessions live on the loop
    return Response(status_code=204)
