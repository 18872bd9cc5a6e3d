"""Asynchronous requests (video, batches) that clients poll: progress, results queue, stop, clear.

The shapes follow the Supervisely serving protocol (reference/supervisely-session-protocol.md §7). The store
sits behind `RequestStore` so several API replicas can later share one (e.g. in Redis).
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any

PREPARING = "Preparing model for inference..."
RUNNING = "Running inference..."
FINISHED = "Finished"
CANCELLED = "Cancelled"
ERROR = "Error"
TERMINAL = {FINISHED, CANCELLED, ERROR}

MAX_PENDING = 500  # undelivered results before the worker waits for the client to pop
IDLE_TTL_S = 3600  # requests not polled for this long are cancelled and forgotten
CLEAR_GRACE_S = 60


class Stopped(Exception):
    """Raised inside a worker when its request was stopped while it waited."""


class AsyncRequest:
    """One asynchronous request; every method is thread-safe."""

    def __init__(self, kind: str = "image") -> None:
        self.uuid = uuid.uuid4().hex
        self.kind = kind
        self.stage = PREPARING
        self.current = 0
        self.total = 1
        self.stopped = False
        self.exception: dict[str, Any] | None = None
        self.final_result: Any = None
        self.created_at = self.updated_at = self.polled_at = time.time()
        self._results: deque[Any] = deque()
        self._lock = threading.Condition()

    # -- the worker's side ------------------------------------------------------------------------

    def start(self, total: int) -> None:
        with self._lock:
            self.stage, self.total, self.current = RUNNING, total, 0
            self._touch()

    def push(self, result: Any) -> None:
        """Queue one result; waits while MAX_PENDING are undelivered. Raises Stopped once stopped."""
        with self._lock:
            while len(self._results) >= MAX_PENDING and not self.stopped:
                self._lock.wait(timeout=1.0)
            if self.stopped:
                raise Stopped
            self._results.append(result)
            self.current += 1
            self._touch()

    def check_stop(self) -> None:
        """Called between batches/frames: raises Stopped once the client asked to stop."""
        if self.stopped:
            raise Stopped

    def finish(self, final_result: Any = None) -> None:
        with self._lock:
            self.final_result = final_result
            self.stage = CANCELLED if self.stopped else FINISHED
            self._touch()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            self.stage = ERROR
            self.exception = {
                "type": type(exc).__name__,
                "message": str(exc) or type(exc).__name__,
                "traceback": None,
            }
            self._results.clear()  # undelivered results of a failed request are discarded
            self._touch()

    # -- the client's side ------------------------------------------------------------------------

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            self._lock.notify_all()
            self._touch()

    def progress(self, *, pop: bool = False) -> dict[str, Any]:
        """The progress object; with `pop`, `pending_results` is the drained list of queued results."""
        with self._lock:
            self.polled_at = time.time()
            terminal = self.stage in TERMINAL
            started = self.stage != PREPARING
            current, total = (self.current, self.total) if started else (0, 1)
            if pop:
                pending: Any = list(self._results)
                self._results.clear()
                self._lock.notify_all()
            else:
                pending = len(self._results)
            return {
                "uuid": self.uuid,
                "stage": self.stage,
                "progress": {"current": current, "total": total},
                "pending_results": pending,
                "is_inferring": not terminal,
                "finished": terminal,
                "stopped": self.stopped,
                "cancel_inference": self.stopped,
                "paused": False,
                "result": terminal,
                "has_result": terminal,
                "final_result": terminal,
                "exception": self.exception,
                "preparing_progress": {
                    "status": self.stage,
                    "current": current,
                    "total": total,
                    "is_size": False,
                },
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            }

    @property
    def finished(self) -> bool:
        return self.stage in TERMINAL

    def _touch(self) -> None:
        self.updated_at = time.time()


class RequestStore(ABC):
    """Where a session keeps its asynchronous requests."""

    @abstractmethod
    def create(self, kind: str = "image") -> AsyncRequest: ...

    @abstractmethod
    def get(self, request_uuid: str) -> AsyncRequest | None: ...

    @abstractmethod
    def clear(self, request_uuid: str) -> None:
        """Stop the request if it runs and forget it after a grace period; unknown ids are fine."""

    def run(self, request: AsyncRequest, work: Callable[[AsyncRequest], Any]) -> threading.Thread:
        """Run `work(request)` in a worker thread; its return value becomes the final result."""

        def target() -> None:
            try:
                request.finish(work(request))
            except Stopped:
                request.finish()
            except Exception as exc:  # reported to the client through the progress object
                request.fail(exc)

        thread = threading.Thread(target=target, name=f"fovea-request-{request.uuid[:8]}", daemon=True)
        thread.start()
        return thread


class InMemoryRequestStore(RequestStore):
    def __init__(self, *, idle_ttl_s: float = IDLE_TTL_S, clear_grace_s: float = CLEAR_GRACE_S) -> None:
        self.idle_ttl_s = idle_ttl_s
        self.clear_grace_s = clear_grace_s
        self._requests: dict[str, AsyncRequest] = {}
        self._forget_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self, kind: str = "image") -> AsyncRequest:
        self.expire()
        request = AsyncRequest(kind)
        with self._lock:
            self._requests[request.uuid] = request
        return request

    def get(self, request_uuid: str) -> AsyncRequest | None:
        self.expire()
        with self._lock:
            return self._requests.get(request_uuid)

    def clear(self, request_uuid: str) -> None:
        with self._lock:
            request = self._requests.get(request_uuid)
            if request is not None:
                self._forget_at.setdefault(request_uuid, time.time() + self.clear_grace_s)
        if request is not None:
            request.stop()

    def expire(self, now: float | None = None) -> None:
        """Forget cleared requests after their grace period, and stop and forget idle ones."""
        now = time.time() if now is None else now
        with self._lock:
            for key, request in list(self._requests.items()):
                cleared = self._forget_at.get(key)
                if (cleared is not None and now >= cleared) or now - request.polled_at > self.idle_ttl_s:
                    request.stop()
                    del self._requests[key]
                    self._forget_at.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._requests)
