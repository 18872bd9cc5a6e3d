"""`/net/{token}/...`: each deployed session's app, loaded on first use and kept in a bounded LRU cache."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from fovea.core.settings import resolve_settings
from fovea.platform import deployments
from fovea.platform.auth import AuthService
from fovea.platform.db import Database
from fovea.platform.errors import Unauthenticated
from fovea.platform.media import SessionMedia
from fovea.platform.weights import file_path
from fovea.server.session_app import create_session_app
from fovea.sessions.session import ModelSession, SessionConfig

PREFIX = "/net/"


@dataclass(frozen=True, slots=True)
class Deployed:
    """What the database says about a session URL's token."""

    record_id: int
    user_id: int
    weights_id: int
    settings_json: str
    name: str
    dataset_id: int | None


@dataclass
class Loaded:
    session: ModelSession
    app: ASGIApp
    settings_json: str
    requests: int = 0


class SessionHost:
    """Wraps the platform app: `/net/<token>/...` goes to that session's app, everything else passes through."""

    def __init__(self, app: ASGIApp, db: Database, storage: Any, auth: AuthService, capacity: int = 4) -> None:
        self.app, self.db, self.storage, self.auth = app, db, storage, auth
        self.capacity = capacity
        self.loaded: OrderedDict[int, Loaded] = OrderedDict()
        self.locks: dict[int, asyncio.Lock] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        token = scope["path"][len(PREFIX) :].split("/", 1)[0]
        found = await asyncio.to_thread(self._lookup, token)
        if found is None:
            await JSONResponse(
                {"error": "not found", "success": False, "message": "not found", "detail": "not found"}, 404
            )(scope, receive, send)
            return
        loaded = await self._load(found)
        loaded.requests += 1
        prefix = f"{scope.get('root_path', '')}{PREFIX}{token}"
        await loaded.app({**scope, "root_path": prefix}, receive, send)

    def _lookup(self, token: str) -> Deployed | None:
        with self.db.transaction() as db:
            found = deployments.by_token(db, token)
            if found is None:
                return None
            record, weights = found
            return Deployed(record.id, record.user_id, weights.id, record.settings, record.name, record.dataset_id)

    async def _load(self, deployed: Deployed) -> Loaded:
        record_id, settings_json = deployed.record_id, deployed.settings_json
        lock = self.locks.setdefault(record_id, asyncio.Lock())
        async with lock:
            loaded = self.loaded.get(record_id)
            if loaded is None:
                loaded = await self._start(deployed)
                self.loaded[record_id] = loaded
                while len(self.loaded) > self.capacity:  # least recently used sessions unload first
                    _, evicted = self.loaded.popitem(last=False)
                    await evicted.session.aclose()
            elif loaded.settings_json != settings_json:  # PATCH sessions/{id}: new defaults for later requests
                loaded.session.default_settings = resolve_settings(loaded.session.card, json.loads(settings_json))
                loaded.settings_json = settings_json
            self.loaded.move_to_end(record_id)
            return loaded

    async def _start(self, deployed: Deployed) -> Loaded:
        import fovea

        model = await asyncio.to_thread(fovea.load, file_path(self.storage, deployed.weights_id))
        media = SessionMedia(self.db, self.storage, deployed.user_id, deployed.dataset_id)
        session = ModelSession(
            model,
            session_id=str(deployed.record_id),
            name=deployed.name,
            settings=json.loads(deployed.settings_json),
            config=SessionConfig(),
            image_resolver=media.image,
            video_resolver=media.video,
        )
        await session.start()
        app = create_session_app(session, manage_lifecycle=False)
        app.state.repository_control = lambda request: self._is_owner(request, deployed.user_id)
        return Loaded(session, app, deployed.settings_json)

    def _is_owner(self, request: Request, user_id: int) -> bool:
        """V2 load/unload on a session URL need the owner's back-end bearer token."""
        try:
            with self.db.transaction() as db:
                return self.auth.authenticate(db, request.headers.get("authorization")).id == user_id
        except Unauthenticated:
            return False

    def state_of(self, record_id: int) -> dict[str, Any]:
        loaded = self.loaded.get(record_id)
        return {"state": "ready" if loaded else "unloaded", "requests": loaded.requests if loaded else 0}

    def forget(self, record_id: int) -> None:
        loaded = self.loaded.pop(record_id, None)
        if loaded is not None:
            asyncio.get_running_loop().create_task(loaded.session.aclose())

    async def aclose(self) -> None:
        for loaded in self.loaded.values():
            await loaded.session.aclose()
        self.loaded.clear()
