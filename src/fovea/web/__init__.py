"""The web console: static ES modules served at `/` that speak only the public `/backend/` and session APIs."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

# The console loads only its own modules and talks only to this origin; images may be blobs or data URLs.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def mount_console(app: FastAPI) -> None:
    """`/` is the console's page and `/console/` its modules; no route of the API is shadowed."""

    @app.get("/", include_in_schema=False)
    async def console_page() -> FileResponse:
        headers = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
        return FileResponse(STATIC / "index.html", headers=headers)

    app.mount("/console", StaticFiles(directory=STATIC), name="console")
