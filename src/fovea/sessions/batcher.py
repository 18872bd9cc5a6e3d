"""Dynamic batching: concurrent requests share engine runs, one run per core under load.

Callers preprocess their own image in a worker thread and queue the tensor. Worker threads (never the
event loop), one per core, each take what has arrived, wait at most `max_delay_ms` after the first item
for more (and only while more are on their way: a lone request does not wait), run the network once on
the concatenated tensor with a single-threaded engine, and hand each caller its rows of the outputs.
Single-core runs side by side keep both cores busy where one two-thread run would stall whenever decoding
preempts one of its threads: 16 clients on 2 cores got 94 images/s this way against 67 with one
two-thread run at a time, in one A/B run of benchmarks/serving.py's load.

A caller that finds itself alone (nothing queued, running or being prepared) runs the network with the
all-cores engine in its own preprocessing thread instead: the lowest latency for one image, and two
thread crossings rather than four. `CoreGate` keeps that run and the single-core runs apart.

Each caller then decodes its rows with its own settings: on the event loop when decoding has been
measured to be cheap (classification: ~0.1 ms), in a worker thread when it is not (segmentation masks
resized to a large original: 5-20 ms), so neither the loop nor the next engine run waits for it.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fovea.core.engines import OnnxEngine
from fovea.core.io.media import Image
from fovea.core.onnx_model import Batch, OnnxModel
from fovea.core.predictions import Prediction
from fovea.core.settings import resolve_settings
from fovea.errors import FoveaError, InputError
from fovea.sessions.gate import CoreGate
from fovea.sessions.offload import CostAdaptive

# Upper bounds (seconds) of the queue-wait buckets in `BatchStats.queue_wait_counts`; the last is +inf.
QUEUE_WAIT_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)
# Decoding outputs that has been taking longer than this moves from the event loop to a worker thread.
INLINE_POSTPROCESS_S = 0.0005


class Overloaded(FoveaError):
    """The request queue is full; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the model is busy; retry after {retry_after:g} s")
        self.retry_after = retry_after


class Closed(FoveaError):
    """The batcher is not running, or was closed before the request ran."""


class BatchMismatch(RuntimeError):
    """The network returned a different number of rows than it was given (a model problem, not the caller's)."""


@dataclass(slots=True)
class _Item:
    tensor: np.ndarray  # (n, ...): usually one image, several for a client-batched V2 tensor
    future: Future
    queued_at: float
    timing: dict[str, float] | None = None  # filled with queue and run seconds when given


@dataclass(slots=True)
class _Arrival:
    """One caller's "on its way" mark: cleared once, by its preparing thread or by its own await's end."""

    done: bool = False


@dataclass(slots=True)
class BatchStats:
    """Counters for metrics, written under the batcher's lock; readers may copy them at any time.

    `batch_sizes` counts runs per batch size (rows). `queue_wait_counts[i]` counts items that waited at
    most `QUEUE_WAIT_BOUNDS[i]` seconds and more than the bound before it (not cumulative), so with
    `items` and `queue_seconds` it exposes as a Prometheus histogram exactly.
    """

    runs: int = 0
    items: int = 0  # rows run
    requests: int = 0  # queued tensors run (a V2 tensor may hold several rows)
    failures: int = 0  # requests whose run failed
    queue_seconds: float = 0.0
    run_seconds: float = 0.0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    queue_wait_counts: list[int] = field(default_factory=lambda: [0] * len(QUEUE_WAIT_BOUNDS))
    last_run_at: float = 0.0  # wall clock, for "last inference" in the V2 statistics


class DynamicBatcher:
    """An asyncio front for one model: `await batcher.predict(image, settings)` between `start()` and `aclose()`."""

    def __init__(
        self,
        model: OnnxModel,
        *,
        max_batch_size: int = 8,
        max_delay_ms: float = 2.0,
        max_queue: int = 256,
        workers: int | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_delay_ms < 0 or (workers is not None and workers < 1):
            raise ValueError("max_batch_size, max_queue and workers must be >= 1, max_delay_ms >= 0")
        fixed = model.fixed_batch_size
        self.model = model
        self.max_batch_size = max_batch_size if fixed is None else min(max_batch_size, fixed)
        self.max_delay = max_delay_ms / 1000
        self.queue: queue.Queue[_Item | None] = queue.Queue(max_queue)
        self.stats = BatchStats()
        # One worker per core of the all-cores engine; an accelerator runs one batch at a time instead.
        self.workers = workers or (model.network.threads if model.network.on_cpu else 1)
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._gate = CoreGate()
        self._lock = threading.Lock()  # guards the counts below and `stats`
        # Callers between "accepted" and "queued" (preprocessing): a worker waits for a batch to fill
        # only while some are on their way, so a lone request never pays max_delay_ms.
        self._expected = 0
        # Workers holding items (collecting or running): a caller arriving meanwhile joins the queue.
        self._holding = 0
        # Where decoding outputs runs, by its recent cost (read at construction, so tests may lower it).
        self._postprocessing = CostAdaptive(INLINE_POSTPROCESS_S)

    @property
    def running(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads) and not self._closed

    async def start(self) -> None:
        if not self.running:
            self._closed = False
            engine = await asyncio.to_thread(self._worker_engine)  # a second session is loaded here, not mid-request
            self._threads = [
                threading.Thread(target=self._work, args=(engine,), name=f"fovea-batcher-{k}", daemon=True)
                for k in range(self.workers)
            ]
            for thread in self._threads:
                thread.start()

    async def aclose(self) -> None:
        """Stop the workers: batches already running finish; requests still queued fail with `Closed`."""
        self._closed = True
        self._fail_queued()
        if self._threads:
            for _ in self._threads:
                self.queue.put(None)
            for thread in self._threads:
                await asyncio.to_thread(thread.join)
            self._threads = []
        self._fail_queued()  # anything queued from another thread while the workers were stopping

    def _worker_engine(self) -> OnnxEngine:
        return self.model.network if self.workers == 1 else self.model.throughput_engine

    # -- the callers' side (event loop) ------------------------------------------------------------

    async def predict(self, image: Image, settings: Mapping[str, Any] | None = None) -> Prediction:
        """Preprocess off the loop, share a network run with concurrent callers, decode with `settings`.

        Equal to `model.predict(image, settings)`. Bad settings raise InputError before anything is queued.
        """
        return await self.predict_prepared(lambda: self.model.preprocess([image]), settings)

    async def predict_prepared(
        self, prepare: Callable[[], Batch], settings: Mapping[str, Any] | None = None
    ) -> Prediction:
        """Like `predict`, with `prepare()` (e.g. decode + preprocess of an upload) run in one worker-thread hop."""
        resolved = resolve_settings(self.model.card, settings)  # bad settings fail before queueing
        batch, outputs = await self.prepare_and_run(prepare)
        return (await self.postprocess(outputs, batch, resolved))[0]

    async def prepare_and_run(
        self, prepare: Callable[[], Batch], timing: dict[str, float] | None = None
    ) -> tuple[Batch, list[np.ndarray]]:
        """`prepare()` in a worker thread, then its tensor's rows of a network run: the batch, and the outputs.

        Batched with concurrent callers; run in the same thread when nobody else is in sight. `timing` as in `run`.
        """
        self._check_open()
        arrival = _Arrival()
        with self._lock:
            self._expected += 1
        try:
            batch, future = await asyncio.to_thread(self._prepare_and_submit, prepare, timing, arrival)
        finally:
            self._arrived(arrival)  # a caller cancelled before its thread started never arrives there
        if future.done():  # it ran in that thread; waiting on it would cost another loop wake-up
            return batch, future.result()
        return batch, await asyncio.wrap_future(future)

    def prepare_and_submit(
        self, prepare: Callable[[], Batch], timing: dict[str, float] | None = None
    ) -> tuple[Batch, Future]:
        """From a worker thread, never the loop: `prepare()` here, then run here when alone, else queue.

        The batch, and a future of its rows of the outputs (done already when it ran here). For asynchronous
        requests (video frames, image batches), whose worker threads then share the cores like any caller.
        """
        self._check_open()
        with self._lock:
            self._expected += 1
        return self._prepare_and_submit(prepare, timing, _Arrival())

    async def run(self, tensor: np.ndarray, timing: dict[str, float] | None = None) -> list[np.ndarray]:
        """Queue a preprocessed (n, ...) tensor; returns its rows of the batched outputs.

        `timing`, when given, receives `queue`, `run` (seconds) and `batch` (rows in the run).
        Raises `Overloaded` at once when the queue is full, `Closed` when the batcher is not running.
        """
        item = _Item(tensor, Future(), time.monotonic(), timing)
        self._submit(item)
        return await asyncio.wrap_future(item.future)

    def _prepare_and_submit(
        self, prepare: Callable[[], Batch], timing: dict[str, float] | None, arrival: _Arrival
    ) -> tuple[Batch, Future]:
        """In a worker thread: prepare; run here when alone, else queue for the worker. The caller is expected."""
        try:
            batch = prepare()
        except BaseException:
            self._arrived(arrival)
            raise
        item = _Item(batch.tensor, Future(), time.monotonic(), timing)
        with self._lock:
            alone = self._expected == 1 and not self._holding and self.queue.empty()
        if alone and not self._closed and self._gate.try_exclusive():
            self._arrived(arrival)
            try:
                self._run([item], self.model.network)
            finally:
                self._gate.release_exclusive()
            return batch, item.future
        try:
            self._submit(item)  # queued before it stops being expected, so a worker never misses it
        finally:
            self._arrived(arrival)
        return batch, item.future

    def _submit(self, item: _Item) -> None:
        self._check_open()
        if len(item.tensor) > self.max_batch_size:
            raise InputError(f"a batch of {len(item.tensor)} is over this session's limit of {self.max_batch_size}")
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            raise Overloaded(retry_after=self._retry_after()) from None

    def _check_open(self) -> None:
        if not self.running:
            raise Closed("the session is not running")

    def _arrived(self, arrival: _Arrival) -> None:
        """The caller is no longer on its way; once per caller, whichever of its thread and its await is first."""
        with self._lock:
            if not arrival.done:
                arrival.done = True
                self._expected -= 1

    def _retry_after(self) -> float:
        """Seconds until the queue has drained at the recent run rate (at least 1: Retry-After is whole seconds)."""
        stats = self.stats
        per_run = stats.run_seconds / stats.runs if stats.runs else 0.1
        runs_queued = self.queue.qsize() / self.max_batch_size / self.workers
        return float(max(1, math.ceil(runs_queued * per_run)))

    async def postprocess(
        self, outputs: list[np.ndarray], batch: Batch, settings: Mapping[str, Any]
    ) -> list[Prediction]:
        """Decode a request's rows with its settings: on the loop while that has been cheap, else in a thread."""
        return await self._postprocessing.call(self._postprocess, outputs, batch, settings)

    def _postprocess(self, outputs: list[np.ndarray], batch: Batch, settings: Mapping[str, Any]) -> list[Prediction]:
        return self.model.postprocess((outputs, batch), settings)

    def _fail_queued(self) -> None:
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if item is not None and item.future.set_running_or_notify_cancel():
                item.future.set_exception(Closed("the session is shutting down"))

    # -- the worker threads ------------------------------------------------------------------------

    def _work(self, engine: OnnxEngine) -> None:
        carried: _Item | None = None
        while True:
            if carried is None:
                first = self.queue.get()
                if first is None:
                    return
                with self._lock:
                    self._holding += 1
            else:
                first = carried
            collected, carried = self._collect(first)
            items = [i for i in collected if i.future.set_running_or_notify_cancel()]  # skip cancelled callers
            if items:
                with self._gate.shared():
                    self._run(items, engine)
            if carried is None:
                with self._lock:
                    self._holding -= 1

    def _collect(self, first: _Item) -> tuple[list[_Item], _Item | None]:
        """Items for one run, and an item that did not fit (it opens the next run)."""
        items, rows = [first], len(first.tensor)
        shape, dtype = first.tensor.shape[1:], first.tensor.dtype
        deadline = time.monotonic() + self.max_delay
        while rows < self.max_batch_size:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                # Wait while callers are on their way, or while a lone caller's run holds the cores anyway.
                if remaining <= 0 or (self._expected <= 0 and not self._gate.exclusive):
                    break
                try:  # short waits: notice at once when the last expected caller has queued
                    item = self.queue.get(timeout=min(remaining, 0.0005))
                except queue.Empty:
                    continue
            if item is None:  # closing: finish this batch, then stop
                self.queue.put(None)
                break
            # An item that would overflow the batch, or that cannot be concatenated with it (a V2 client's
            # tensor of another shape), opens the next run, so it cannot fail this one.
            fits = rows + len(item.tensor) <= self.max_batch_size
            if not fits or item.tensor.shape[1:] != shape or item.tensor.dtype != dtype:
                return items, item
            items.append(item)
            rows += len(item.tensor)
        return items, None

    def _run(self, items: list[_Item], engine: OnnxEngine) -> None:
        started = time.monotonic()
        try:
            tensor = items[0].tensor if len(items) == 1 else np.concatenate([i.tensor for i in items])
            outputs = self.model.run(tensor, engine)
            rows = len(tensor)
            if len(items) > 1:
                wrong = [o.shape for o in outputs if o.ndim == 0 or o.shape[0] != rows]
                if wrong:
                    raise BatchMismatch(f"the network returned outputs of shapes {wrong} for a batch of {rows}")
        except Exception as exc:  # the run's failure belongs to this batch's callers only
            with self._lock:
                self.stats.failures += len(items)
            for item in items:
                item.future.set_exception(exc)
            return
        finished = time.monotonic()
        with self._lock:
            self._count(items, rows, started, finished)
        if len(items) == 1:  # as is: some graphs (batch fixed at 1) have outputs without a batch axis
            items[0].future.set_result(outputs)
            return
        offset = 0
        for item in items:
            n = len(item.tensor)
            item.future.set_result([o[offset : offset + n] for o in outputs])
            offset += n

    def _count(self, items: list[_Item], rows: int, started: float, finished: float) -> None:
        stats = self.stats
        stats.runs += 1
        stats.items += rows
        stats.requests += len(items)
        stats.run_seconds += finished - started
        waits = stats.queue_wait_counts
        for item in items:
            wait = started - item.queued_at
            stats.queue_seconds += wait
            waits[bisect.bisect_left(QUEUE_WAIT_BOUNDS, wait)] += 1
            if item.timing is not None:
                item.timing.update(queue=wait, run=finished - started, batch=rows)
        if rows in stats.batch_sizes:
            stats.batch_sizes[rows] += 1
        else:  # a new key: replace the dict, so a reader iterating the old one never sees it change size
            stats.batch_sizes = {**stats.batch_sizes, rows: 1}
        stats.last_run_at = time.time()
