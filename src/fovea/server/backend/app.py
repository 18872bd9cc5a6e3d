"""The platform app: `/backend/`, the deployed sessions at `/net/{token}/`, and ops routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from fovea.jobs.executor import Executor
from fovea.jobs.local import LocalExecutor
from fovea.platform.auth import AuthService
from fovea.platform.config import PlatformSettings
from fovea.platform.db import Database
from fovea.platform.processes import fail_stale
from fovea.server import ops
from fovea.server.backend import (
    auth_routes,
    catalog_routes,
    dataset_routes,
    explain_routes,
    media_routes,
    process_routes,
    property_routes,
    session_routes,
    training_routes,
    weights_routes,
)
from fovea.server.backend.schemas.common import bad_requests_are_400
from fovea.server.errors import install_http_error_handler
from fovea.server.net import SessionHost
from fovea.server.paths import NormalizePath
from fovea.server.uploads import BodyLimit
from fovea.web import mount_console

logger = logging.getLogger(__name__)

# The only routes whose bodies may pass FOVEA_MAX_BODY_BYTES (up to FOVEA_MAX_UPLOAD_BYTES): dataset zips, ONNX files.
UPLOAD_ROUTES = (("POST", "/backend/datasets"), ("POST", "/backend/weights"))


def make_executor(settings: PlatformSettings) -> Executor:
    """The local process pool by default; Celery workers (`fovea worker`) when FOVEA_EXECUTOR=celery."""
    if settings.executor == "celery":
        from fovea.jobs.celery_app import CeleryExecutor

        return CeleryExecutor(settings.broker_url)
    return LocalExecutor(workers=settings.workers)


async def _fail_stale_processes(db: Database, stale_after_s: int) -> None:
    """Every little while, fail the running processes whose worker went silent (see processes.fail_stale)."""

    def sweep() -> None:
        with db.transaction() as session:
            fail_stale(session, stale_after_s)

    while True:
        await asyncio.sleep(min(30.0, stale_after_s / 3))
        try:
            await asyncio.to_thread(sweep)
        except Exception:  # a database hiccup must not end the loop; the next sweep retries
            logger.exception("sweeping stale processes failed")


def create_backend_app(settings: PlatformSettings, db: Database) -> ASGIApp:
    """The platform as one ASGI app; `/net/<token>/...` is answered by that session's own app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.executor = make_executor(settings)
        await asyncio.to_thread(app.state.executor.fail_orphans, db)  # what this server's own pool left behind
        reaper = asyncio.create_task(_fail_stale_processes(db, settings.stale_after_s))
        try:
            yield
        finally:
            reaper.cancel()
            app.state.executor.shutdown()
            await app.state.sessions.aclose()

    app = FastAPI(
        title="Fovea", lifespan=lifespan, redirect_slashes=False, docs_url="/docs", openapi_url="/openapi.json"
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = bad_requests_are_400(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.db = db
    app.state.auth = AuthService(settings)
    backend = APIRouter(prefix="/backend")
    backend.include_router(auth_routes.router)
    backend.include_router(catalog_routes.router)
    backend.include_router(weights_routes.router)
    backend.include_router(property_routes.router)
    backend.include_router(dataset_routes.router)
    backend.include_router(media_routes.router)
    backend.include_router(process_routes.router)
    backend.include_router(explain_routes.router)
    backend.include_router(training_routes.router)
    backend.include_router(session_routes.router)
    app.include_router(backend)
    app.include_router(ops.health_router)
    mount_console(app)
    install_http_error_handler(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        upload_routes=UPLOAD_ROUTES,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(NormalizePath)
    host = SessionHost(app, db, settings.storage_dir, app.state.auth)
    app.state.sessions = host
    return host
