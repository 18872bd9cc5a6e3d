"""Dynamic batching: concurrent requests share one engine run.

Callers preprocess their own image (off the event loop) and queue the tensor; one worker thread takes
what has arrived, waits at most `max_delay_ms` for more up to `max_batch_size`, runs the network once,
and hands each caller its slice of the outputs to decode with its own settings.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fovea.core.io import Image
from fovea.core.onnx_model import Batch, OnnxModel
from fovea.core.predictions import Prediction
from fovea.core.settings import resolve_settings
from fovea.errors import FoveaError, InputError


class Overloaded(FoveaError):
    """The request queue is full; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the model is busy; retry after {retry_after:g} s")
        self.retry_after = retry_after


class Closed(FoveaError):
    """The batcher was closed before the request ran."""


@dataclass(slots=True)
class _Item:
    tensor: np.ndarray  # (n, ...): usually one image, several for a client-batched V2 tensor
    future: Future
    queued_at: float
    timing: dict[str, float] | None = None  # filled with queue and run seconds when given


@dataclass(slots=True)
class BatchStats:
    """Counters for metrics; updated by the worker thread only."""

    runs: int = 0
    items: int = 0
    failures: int = 0
    queue_seconds: float = 0.0
    run_seconds: float = 0.0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    last_run_at: float = 0.0


class DynamicBatcher:
    def __init__(self, model: OnnxModel, *, max_batch_size: int = 8, max_delay_ms: float = 2.0, max_queue: int = 256):
        if max_batch_size < 1 or max_queue < 1 or max_delay_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_delay_ms >= 0")
        fixed = model.fixed_batch_size
        self.model = model
        self.max_batch_size = max_batch_size if fixed is None else min(max_batch_size, fixed)
        self.max_delay = max_delay_ms / 1000
        self.queue: queue.Queue[_Item | None] = queue.Queue(max_queue)
        self.stats = BatchStats()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Callers between "accepted" and "queued" (decoding, preprocessing): the worker waits for a batch
        # to fill only while some are on their way, so a lone request never pays max_delay_ms.
        self._expected = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def start(self) -> None:
        if not self.running:
            self._closed = False
            self._thread = threading.Thread(target=self._work, name="fovea-batcher", daemon=True)
            self._thread.start()

    async def aclose(self) -> None:
        """Stop the worker; requests still queued fail with `Closed`."""
        self._closed = True
        while True:  # what has not started yet fails now; a batch already running finishes
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item.future.set_running_or_notify_cancel():
                item.future.set_exception(Closed("the session is shutting down"))
        if self._thread is not None:
            self.queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    async def predict(self, image: Image, settings: Mapping[str, Any] | None = None) -> Prediction:
        """Preprocess off the loop, share a network run with concurrent callers, decode with `settings`."""
        return await self.predict_prepared(lambda: self.model.preprocess([image]), settings)

    async def predict_prepared(
        self, prepare: Callable[[], Batch], settings: Mapping[str, Any] | None = None
    ) -> Prediction:
        """Like `predict`, with `prepare()` (e.g. decode + preprocess of an upload) run in one worker-thread hop."""
        resolved = resolve_settings(self.model.card, settings)  # bad settings fail before queueing
        self._expected += 1
        try:
            batch = await asyncio.to_thread(prepare)
        except BaseException:
            self._expected -= 1
            raise
        outputs = await self.run(batch.tensor, expected=True)
        return self.model.postprocess((outputs, batch), resolved)[0]

    async def run(
        self, tensor: np.ndarray, timing: dict[str, float] | None = None, *, expected: bool = False
    ) -> list[np.ndarray]:
        """Queue a preprocessed (n, ...) tensor; returns its rows of the batched outputs.

        `timing`, when given, receives `queue` and `run` seconds (for the V2 statistics).
        """
        if expected:
            self._expected -= 1
        if self._closed or not self.running:
            raise Closed("the session is not running")
        if len(tensor) > self.max_batch_size:
            raise InputError(f"a batch of {len(tensor)} is over this session's limit of {self.max_batch_size}")
        item = _Item(tensor, Future(), time.monotonic(), timing)
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            raise Overloaded(retry_after=max(1.0, self.max_delay * 10)) from None
        return await asyncio.wrap_future(item.future)

    # -- the worker thread ------------------------------------------------------------------------

    def _collect(self, first: _Item) -> tuple[list[_Item], _Item | None]:
        """Items for one run, and an item that did not fit (it opens the next run)."""
        items, rows = [first], len(first.tensor)
        deadline = time.monotonic() + self.max_delay
        while rows < self.max_batch_size:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._expected <= 0:
                    break
                try:
                    item = self.queue.get(timeout=min(remaining, 0.0005))
                except queue.Empty:
                    continue
            if item is None:  # closing: finish this batch, then stop
                self.queue.put(None)
                break
            if rows + len(item.tensor) > self.max_batch_size:
                return items, item
            items.append(item)
            rows += len(item.tensor)
        return items, None

    def _work(self) -> None:
        carried: _Item | None = None
        while True:
            first = carried or self.queue.get()
            if first is None:
                return
            collected, carried = self._collect(first)
            items = [i for i in collected if i.future.set_running_or_notify_cancel()]
            if items:
                self._run(items)

    def _run(self, items: list[_Item]) -> None:
        started = time.monotonic()
        stats = self.stats
        try:
            tensor = items[0].tensor if len(items) == 1 else np.concatenate([i.tensor for i in items])
            outputs = self.model.run(tensor, self.model.network)
        except Exception as exc:  # the engine's failure belongs to this batch's callers only
            stats.failures += len(items)
            for item in items:
                item.future.set_exception(exc)
            return
        finished = time.monotonic()
        rows = len(tensor)
        stats.runs += 1
        stats.items += rows
        stats.run_seconds += finished - started
        stats.queue_seconds += sum(started - i.queued_at for i in items)
        stats.batch_sizes[rows] = stats.batch_sizes.get(rows, 0) + 1
        stats.last_run_at = time.time()
        for item in items:
            if item.timing is not None:
                item.timing.update(queue=started - item.queued_at, run=finished - started, batch=rows)
        if len(items) == 1:  # as is: some graphs (batch fixed at 1) have outputs without a batch axis
            items[0].future.set_result(outputs)
            return
        offset = 0
        for item in items:
            n = len(item.tensor)
            item.future.set_result([o[offset : offset + n] for o in outputs])
            offset += n
