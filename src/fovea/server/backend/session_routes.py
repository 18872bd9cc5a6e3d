"""`sessions`: deploy weights at a capability URL, list, read, change settings, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from fovea.platform import deployments
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, json_body, settings

router = APIRouter(route_class=BackendRoute)


def _item(request: Request, record: Any) -> dict[str, Any]:
    secret = deployments.server_secret(settings(request).home)
    token = deployments.derive_token(secret, record.nonce)
    runtime = request.app.state.sessions.state_of(record.id)
    return deployments.session_json(record, token, str(request.base_url), runtime)


@router.post("/sessions", status_code=201)
async def create_session(request: Request, user: CurrentUser, db: DB) -> dict[str, Any]:
    secret = deployments.server_secret(settings(request).home)
    record, _ = deployments.create(db, user, await json_body(request), secret)
    return _item(request, record)


@router.get("/sessions")
async def list_sessions(request: Request, user: CurrentUser, db: DB) -> list[dict[str, Any]]:
    return [_item(request, r) for r in deployments.list_owned(db, user)]


@router.get("/sessions/{session_id}")
async def get_session(session_id: int, request: Request, user: CurrentUser, db: DB) -> dict[str, Any]:
    return _item(request, deployments.owned(db, user, session_id))


@router.patch("/sessions/{session_id}")
async def patch_session(session_id: int, request: Request, user: CurrentUser, db: DB) -> dict[str, Any]:
    return _item(request, deployments.update_settings(db, user, session_id, await json_body(request)))


@router.delete("/sessions/{session_id}", status_code=204)
async def delete_session(session_id: int, request: Request, user: CurrentUser, db: DB) -> Response:
    db.delete(deployments.owned(db, user, session_id))
    request.app.state.sessions.forget(session_id)
    return Response(status_code=204)
