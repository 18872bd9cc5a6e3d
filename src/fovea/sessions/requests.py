"""Asynchronous requests (video, batches) that clients poll: progress, results queue, stop, clear.

The shapes and rules follow the Supervisely serving protocol (reference/supervisely-session-protocol.md §7).
A worker thread produces results with `start`, `push` and `finish` (or `fail`); clients read
`progress_dict()` and drain results with `progress_dict(with_results=True)`. Requests live in a
`RequestStore`: in memory here; the interface is small so several API replicas can later share one
(e.g. in Redis).
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
TERMINAL = frozenset({FINISHED, CANCELLED, ERROR})

MAX_PENDING = 500  # undelivered results before the worker waits for the client to pop
IDLE_TTL_S = 3600  # requests not polled for this long are stopped and forgotten
CLEAR_GRACE_S = 60  # a cleared request stays readable this long (a late poll still gets an answer)


class Stopped(Exception):
    """Raised in the worker when the client stopped its request (`push`, `check_stop`)."""


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
        self._preparing: tuple[int, int, bool] = (0, 1, False)  # current, total, is_size
        self._results: deque[Any] = deque()
        self._lock = threading.Condition()

    @property
    def finished(self) -> bool:
        return self.stage in TERMINAL

    @property
    def pending_results(self) -> int:
        """Results produced and not yet delivered."""
        with self._lock:
            return len(self._results)

    # -- the worker's side ------------------------------------------------------------------------

    def preparing(self, current: int, total: int, *, is_size: bool = False) -> None:
        """Progress of a preparation step (e.g. bytes of a video received), shown in `preparing_progress`."""
        with self._lock:
            self._preparing = (current, total, is_size)
            self._touch()

    def start(self, total: int) -> None:
        """Running from now on; `total` is the number of results this request will produce."""
        with self._lock:
            if self.stage not in TERMINAL:
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
        """Called before every batch or frame: raises Stopped once the client asked to stop."""
        if self.stopped:
            raise Stopped

    def finish(self, final_result: Any = None) -> None:
        """The end, after every result was pushed: `Finished`, or `Cancelled` when stopped."""
        with self._lock:
            if self.stage not in TERMINAL:
                self.final_result = final_result
                self.stage = CANCELLED if self.stopped else FINISHED
                self._touch()

    def fail(self, exc: BaseException) -> None:
        """The end, on an error: its type and message go to the client; undelivered results are discarded."""
        with self._lock:
            if self.stage not in TERMINAL:
                self.stage = ERROR
                self.exception = {
                    "type": type(exc).__name__,
                    "message": str(exc) or type(exc).__name__,
                    "traceback": None,
                }
                self._results.clear()
                self._lock.notify_all()
                self._touch()

    # -- the client's side ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop before its next batch or frame; idempotent, fine after the end."""
        with self._lock:
            if not self.stopped:
                self.stopped = True
                self._lock.notify_all()
                self._touch()

    def pop_all(self) -> list[Any]:
        """Drain the queued results, oldest first; each result is delivered exactly once."""
        with self._lock:
            return self._drain()

    def progress_dict(self, with_results: bool = False) -> dict[str, Any]:
        """The progress object of §7.2; `with_results`: §7.3's, with the drained results in `pending_results`."""
        with self._lock:
            self.polled_at = time.time()
            terminal = self.stage in TERMINAL
            started = self.stage != PREPARING
            current, total = (self.current, self.total) if started else (0, 1)  # rule 1: total 1 = not started
            pending: Any = self._drain() if with_results else len(self._results)
            if started:
                preparing = {"status": self.stage, "current": current, "total": total, "is_size": False}
            else:
                done, of, is_size = self._preparing
                preparing = {"status": self.stage, "current": done, "total": of, "is_size": is_size}
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
                "preparing_progress": preparing,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            }

    def progress(self, *, pop: bool = False) -> dict[str, Any]:
        """`progress_dict(with_results=pop)` (the name the dialects use)."""
        return self.progress_dict(with_results=pop)

    def _drain(self) -> list[Any]:
        results = list(self._results)
        self._results.clear()
        self._lock.notify_all()  # a worker waiting on backpressure may go on
        return results

    def _touch(self) -> None:
        self.updated_at = time.time()


class RequestStore(ABC):
    """Where a session keeps its asynchronous requests."""

    @abstractmethod
    def create(self, kind: str = "image") -> AsyncRequest:
        """A new request in the `Preparing` stage, findable by its uuid from now on."""

    @abstractmethod
    def get(self, request_uuid: str) -> AsyncRequest | None:
        """The request, or None when the uuid is unknown, cleared past its grace period or expired."""

    @abstractmethod
    def clear(self, request_uuid: str) -> None:
        """Stop the request if it runs and forget it after a grace period; unknown ids are fine."""

    @abstractmethod
    def expire(self, now: float | None = None) -> None:
        """Forget cleared requests past their grace period; stop and forget requests idle for the TTL."""

    def run(self, request: AsyncRequest, work: Callable[[AsyncRequest], Any]) -> threading.Thread:
        """Run `work(request)` in a worker thread; its return value becomes the final result.

        `Stopped` ends the request as `Cancelled`; any other exception fails it (the client sees its type
        and message in the progress object).
        """

        def target() -> None:
            try:
                result = work(request)
            except Stopped:
                request.finish()
            except Exception as exc:  # reported to the client through the progress object
                request.fail(exc)
            else:
                request.finish(result)

        thread = threading.Thread(target=target, name=f"fovea-request-{request.uuid[:8]}", daemon=True)
        thread.start()
        return thread


class InMemoryRequestStore(RequestStore):
    """Requests in this process's memory: enough for one API replica per session."""

    EXPIRE_EVERY_S = 1.0  # `create` and `get` sweep at most this often

    def __init__(self, *, idle_ttl_s: float = IDLE_TTL_S, clear_grace_s: float = CLEAR_GRACE_S) -> None:
        self.idle_ttl_s = idle_ttl_s
        self.clear_grace_s = clear_grace_s
        self._requests: dict[str, AsyncRequest] = {}
        self._forget_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._swept_at = 0.0

    def create(self, kind: str = "image") -> AsyncRequest:
        self._sweep()
        request = AsyncRequest(kind)
        with self._lock:
            self._requests[request.uuid] = request
        return request

    def get(self, request_uuid: str) -> AsyncRequest | None:
        self._sweep()
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
        now = time.time() if now is None else now
        with self._lock:
            gone = [
                key
                for key, request in self._requests.items()
                if now >= self._forget_at.get(key, now + 1) or now - request.polled_at > self.idle_ttl_s
            ]
            requests = [self._requests.pop(key) for key in gone]
            for key in gone:
                self._forget_at.pop(key, None)
        for request in requests:
            request.stop()  # releases a worker waiting for a client that is gone

    def _sweep(self) -> None:
        now = time.time()
        if now - self._swept_at >= self.EXPIRE_EVERY_S:
            self._swept_at = now
            self.expire(now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._requests)
