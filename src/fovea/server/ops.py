"""Liveness, readiness and metrics for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

router = APIRouter()
health_router = APIRouter()


@health_router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


router.include_router(health_router)


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    session = request.app.state.session
    if session.batcher.running:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready"}, 503, headers={"Retry-After": "1"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    state = request.app.state
    stats = state.session.batcher.stats
    # Engine-side figures are folded in at scrape time from the batcher's counters.
    observed = state.metrics_seen
    for size, count in stats.batch_sizes.items():
        for _ in range(count - observed.get(size, 0)):
            state.metrics.batch_size.observe(size)
        observed[size] = count
    new_items = stats.items - observed.get("items", 0)
    if new_items:
        state.metrics.queue_seconds.observe((stats.queue_seconds - observed.get("queue", 0.0)) / new_items)
        observed["items"], observed["queue"] = stats.items, stats.queue_seconds
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")
