"""`/net/{token}/...`: each deployed session's app, loaded on first use and kept in a bounded LRU cache.

The cache is keyed by the session's token and weights, never by a row id alone: a deleted session, weights or
dataset must not be served to whoever gets a new session later. Deleting any of them also evicts what it loaded.

What the database says about a token (the session, its owner and weights still usable) is remembered for
LOOKUP_TTL_S: the query costs ~2 ms of Python per request, a tenth of the CPU a session under load has. Every
platform write that passes through this host (any back-end call but GET/HEAD/OPTIONS) forgets it all, before and
after it runs, so a deletion, a revoked share or new settings are seen by the very next request; a change made
by another process (a worker, a second replica) is seen within LOOKUP_TTL_S.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable
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
from fovea.platform.storage import weights_file
from fovea.server.session_app import create_session_app
from fovea.sessions.session import ModelSession, SessionConfig

PREFIX = "/net/"
LOOKUP_TTL_S = 1.0
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


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
    record_id: int
    weights_id: int
    dataset_id: int | None
    requests: int = 0


CacheKey = tuple[str, int]  # (token, weights id)


class SessionHost:
    """Wraps the platform app: `/net/<token>/...` goes to that session's app, everything else passes through."""

    def __init__(self, app: ASGIApp, db: Database, storage: Any, auth: AuthService, capacity: int = 4) -> None:
        self.app, self.db, self.storage, self.auth = app, db, storage, auth
        self.capacity = capacity
        self.loaded: OrderedDict[CacheKey, Loaded] = OrderedDict()
        self.locks: dict[CacheKey, asyncio.Lock] = {}
        self.lookups: dict[str, tuple[float, Deployed]] = {}  # token -> (valid until, what the database said)
        self._lookups_cleared = 0  # a lookup that ran across a clear may have read what the write changed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            if scope["type"] == "http" and scope["method"] not in _READS:
                self._forget_lookups()  # a write may revoke a session: ask the database again, now and after it
                try:
                    await self.app(scope, receive, send)
                finally:
                    self._forget_lookups()
                return
            await self.app(scope, receive, send)
            return
        token = scope["path"][len(PREFIX) :].split("/", 1)[0]
        found = await self._deployed(token)
        if found is None:
            self._evict(lambda key, _: key[0] == token)  # deleted with its owner or weights: nothing stays loaded
            await JSONResponse(
                {"error": "not found", "success": False, "message": "not found", "detail": "not found"}, 404
            )(scope, receive, send)
            return
        loaded = await self._load(token, found)
        loaded.requests += 1
        prefix = f"{scope.get('root_path', '')}{PREFIX}{token}"
        await loaded.app({**scope, "root_path": prefix}, receive, send)

    async def _deployed(self, token: str) -> Deployed | None:
        remembered = self.lookups.get(token)
        now = time.monotonic()
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        cleared = self._lookups_cleared
        found = await asyncio.to_thread(self._lookup, token)
        if found is not None and cleared == self._lookups_cleared:
            if len(self.lookups) >= 1024:  # tokens seen within the TTL: a bound against a flood of them
                self.lookups.clear()
            self.lookups[token] = (now + LOOKUP_TTL_S, found)
        return found

    def _forget_lookups(self) -> None:
        self.lookups.clear()
        self._lookups_cleared += 1

    def _lookup(self, token: str) -> Deployed | None:
        with self.db.transaction() as db:
            found = deployments.by_token(db, token)
            if found is None:
                return None
            record, weights = found
            return Deployed(record.id, record.user_id, weights.id, record.settings, record.name, record.dataset_id)

    async def _load(self, token: str, deployed: Deployed) -> Loaded:
        key, settings_json = (token, deployed.weights_id), deployed.settings_json
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            loaded = self.loaded.get(key)
            if loaded is None:
                loaded = await self._start(deployed)
                self.loaded[key] = loaded
                while len(self.loaded) > self.capacity:  # least recently used sessions unload first
                    _, evicted = self.loaded.popitem(last=False)
                    await evicted.session.aclose()
            elif loaded.settings_json != settings_json:  # PATCH sessions/{id}: new defaults for later requests
                loaded.session.default_settings = resolve_settings(loaded.session.card, json.loads(settings_json))
                loaded.settings_json = settings_json
            self.loaded.move_to_end(key)
            return loaded

    async def _start(self, deployed: Deployed) -> Loaded:
        import fovea

        model = await asyncio.to_thread(fovea.load, weights_file(self.storage, deployed.weights_id))
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
        return Loaded(
            session, app, deployed.settings_json, deployed.record_id, deployed.weights_id, deployed.dataset_id
        )

    def _is_owner(self, request: Request, user_id: int) -> bool:
        """V2 load/unload on a session URL need the owner's back-end bearer token."""
        try:
            with self.db.transaction() as db:
                return self.auth.authenticate(db, request.headers.get("authorization")).id == user_id
        except Unauthenticated:
            return False

    def state_of(self, record_id: int) -> dict[str, Any]:
        loaded = next((entry for entry in list(self.loaded.values()) if entry.record_id == record_id), None)
        return {"state": "ready" if loaded else "unloaded", "requests": loaded.requests if loaded else 0}

    def forget(self, record_id: int) -> None:
        """The session was deleted: unload its model (call on the event loop, as every eviction)."""
        self._evict(lambda _, entry: entry.record_id == record_id)

    def forget_weights(self, weights_id: int) -> None:
        """The weights were deleted, and with them every session deploying them."""
        self._evict(lambda _, entry: entry.weights_id == weights_id)

    def forget_dataset(self, dataset_id: int) -> None:
        """The dataset was deleted: the sessions reaching its images by id reload without it."""
        self._evict(lambda _, entry: entry.dataset_id == dataset_id)

    def _evict(self, matches: Callable[[CacheKey, Loaded], bool]) -> None:
        for key in [key for key, entry in self.loaded.items() if matches(key, entry)]:
            loaded = self.loaded.pop(key)
            asyncio.get_running_loop().create_task(loaded.session.aclose())

    async def aclose(self) -> None:
        for loaded in self.loaded.values():
            await loaded.session.aclose()
        self.loaded.clear()
