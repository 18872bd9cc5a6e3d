"""Prometheus metrics for sessions: requests, errors, latency, queue wait and batch sizes."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class SessionMetrics:
    """One registry per app, so several sessions in one process never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fovea_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.errors = Counter("fovea_errors", "HTTP requests answered with 5xx", ["route"], registry=self.registry)
        self.latency = Histogram(
            "fovea_request_seconds",
            "Request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_seconds = Histogram(
            "fovea_queue_seconds", "Wait in the batch queue", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.batch_size = Histogram(
            "fovea_batch_size",
            "Images per engine run",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: SessionMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], name, str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - start)
            if status >= 500:
                self.metrics.errors.labels(name).inc()
