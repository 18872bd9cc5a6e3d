"""Dynamic batching: concurrent requests share engine runs and get the same answers as alone."""

import asyncio
import threading
import time

import numpy as np
import pytest

import fovea
from fovea.core.card import ModelCard
from fovea.errors import InputError
from fovea.sessions import batcher as batcher_module
from fovea.sessions.batcher import QUEUE_WAIT_BOUNDS, BatchMismatch, Closed, DynamicBatcher, Overloaded
from tests.core.graphs import bright_pixels_segmenter, constant_outputs

TENSOR = np.zeros((1, 3, 32, 32), np.float32)  # what the segmenter's preprocessing produces for one image


@pytest.fixture
def segmenter(tmp_path):
    card = ModelCard(
        task="segmentation", classes=["background", "bright"], input={"size": (32, 32)}, decoder={"kind": "argmax"}
    )
    return fovea.load(bright_pixels_segmenter(tmp_path / "seg.onnx", card))


def images(n):
    out = []
    for k in range(n):
        pixels = np.zeros((40, 40, 3), np.uint8)
        pixels[: 2 * k + 2, :, 0] = 255  # a bright band whose height tells the image apart
        out.append(fovea.Image(pixels, name=f"img{k}"))
    return out


class CountingEngine:
    """Wraps an engine: counts runs, their batch sizes, threads and spans; optionally slow or failing."""

    def __init__(self, engine, *, delay=0.01, fail_on=(), meet=None):
        self.engine, self.delay, self.fail_on, self.meet = engine, delay, set(fail_on), meet
        self.calls, self.sizes, self.thread_names, self.spans = 0, [], [], []
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def run(self, feeds, outputs=None):
        start = time.monotonic()
        with self.lock:
            self.calls += 1
            call = self.calls
            self.sizes.append(len(next(iter(feeds.values()))))
            self.thread_names.append(threading.current_thread().name)
        time.sleep(self.delay)  # a network that takes a moment, so requests pile up
        if self.meet is not None:  # a barrier: only runs that overlap get past it (BrokenBarrierError otherwise)
            self.meet.wait(timeout=30)
        if call in self.fail_on:
            raise RuntimeError(f"engine failure in run {call}")
        result = self.engine.run(feeds, outputs)
        self.spans.append((start, time.monotonic()))
        return result


def counted(model, **options):
    """Count every network run of `model`, on its all-cores and its single-core engine alike."""
    counting = CountingEngine(model.network, **options)
    model.network = model.throughput_engine = counting
    return counting


async def serving(model, coroutine_factory, **options):
    batcher = DynamicBatcher(model, **options)
    await batcher.start()
    try:
        return await coroutine_factory(batcher)
    finally:
        await batcher.aclose()


def test_concurrent_requests_share_runs_and_match_sequential_results(segmenter):
    settings = [{"classes": ["bright"]} if k % 2 else None for k in range(16)]  # per-request settings, one batch
    expected = [segmenter.predict(image, s) for image, s in zip(images(16), settings, strict=True)]
    counting = counted(segmenter)

    async def requests(batcher):
        results = await asyncio.gather(*(batcher.predict(i, s) for i, s in zip(images(16), settings, strict=True)))
        return results, batcher.stats

    got, stats = asyncio.run(serving(segmenter, requests, max_batch_size=8, max_delay_ms=20))
    assert counting.calls < 16 and max(counting.sizes) <= 8 and sum(counting.sizes) == 16
    assert threading.main_thread().name not in counting.thread_names  # never the event loop
    for prediction, reference in zip(got, expected, strict=True):
        assert prediction.source == reference.source and prediction.size == reference.size
        np.testing.assert_array_equal(prediction.labels, reference.labels)
        np.testing.assert_array_equal(prediction.scores, reference.scores)
        np.testing.assert_array_equal(prediction.masks, reference.masks)
    assert stats.runs == counting.calls and stats.items == stats.requests == 16 and stats.failures == 0
    assert sum(size * n for size, n in stats.batch_sizes.items()) == 16
    assert sum(stats.queue_wait_counts) == 16 and stats.queue_wait_counts[-1] == 0  # none waited "forever"
    assert len(stats.queue_wait_counts) == len(QUEUE_WAIT_BOUNDS)


def test_a_lone_request_runs_where_it_was_prepared_and_company_queues(segmenter):
    counting = counted(segmenter, delay=0.1)

    async def requests(batcher):
        await batcher.predict(images(1)[0])  # alone: runs in its preprocessing thread
        first = asyncio.ensure_future(batcher.predict(images(1)[0]))
        await asyncio.sleep(0.05)  # the first runs (100 ms) while three more arrive
        rest = await asyncio.gather(*(batcher.predict(i) for i in images(3)))
        return [await first, *rest]

    results = asyncio.run(serving(segmenter, requests, max_batch_size=8, max_delay_ms=20, workers=1))
    assert counting.sizes == [1, 1, 3] and all(r.masks is not None for r in results)
    alone, _, shared = counting.thread_names
    assert alone not in ("fovea-batcher-0", threading.main_thread().name) and shared == "fovea-batcher-0"


def test_under_load_single_core_runs_go_side_by_side(segmenter):
    all_cores = CountingEngine(segmenter.network, delay=0.1)
    # Each run waits for a second one at a barrier: one at a time, the first would wait alone and break it.
    one_core = CountingEngine(segmenter.throughput_engine, delay=0, meet=threading.Barrier(2))
    segmenter.network, segmenter.throughput_engine = all_cores, one_core

    async def load(batcher):
        return await asyncio.gather(*(batcher.run(TENSOR) for _ in range(4)))

    results = asyncio.run(serving(segmenter, load, max_batch_size=1, max_delay_ms=0, workers=2))
    assert one_core.calls == 4 and all_cores.calls == 0 and one_core.engine.threads == 1
    assert len(set(one_core.thread_names)) == 2 and len(results) == 4 and not one_core.meet.broken


def test_an_all_cores_run_never_overlaps_single_core_runs(segmenter):
    all_cores = CountingEngine(segmenter.network, delay=0.1)
    one_core = CountingEngine(segmenter.throughput_engine, delay=0.05)
    segmenter.network, segmenter.throughput_engine = all_cores, one_core

    async def mixed(batcher):
        lone = asyncio.ensure_future(batcher.predict(images(1)[0]))  # alone: all cores, in its own thread
        await asyncio.sleep(0.03)
        queued = [batcher.run(TENSOR) for _ in range(3)]  # arrive during that run, and wait for it
        await asyncio.gather(lone, *queued)

    asyncio.run(serving(segmenter, mixed, max_batch_size=1, max_delay_ms=0, workers=2))
    assert all_cores.calls == 1 and one_core.calls == 3
    [(start, end)] = all_cores.spans
    assert all(s >= end or e <= start for s, e in one_core.spans)


def test_a_lone_request_does_not_wait_for_company(segmenter):
    async def lone(batcher):
        await batcher.predict(images(1)[0])  # warm-up (also measures the decoding cost)
        # Company is worth waiting an hour for here: answering well within the deadline means it was not awaited.
        return await asyncio.wait_for(batcher.predict(images(1)[0]), timeout=60)

    assert asyncio.run(serving(segmenter, lone, max_delay_ms=3_600_000)).masks is not None


def test_the_batch_closes_at_max_delay_when_company_is_late(segmenter):
    counting = counted(segmenter, delay=0)
    image = images(1)[0]

    decoded = threading.Event()

    def slow_prepare():
        decoded.wait(timeout=60)  # a caller still decoding a big upload, until the quick caller has its answer
        return segmenter.preprocess([image])

    async def two(batcher):
        quick = asyncio.ensure_future(batcher.predict(image))
        slow = asyncio.ensure_future(batcher.predict_prepared(slow_prepare))
        try:  # the first run did not wait for the late caller beyond max_delay (it would wait forever otherwise)
            await asyncio.wait_for(asyncio.shield(quick), timeout=30)
        finally:
            decoded.set()
        return await quick, await slow

    quick, slow = asyncio.run(serving(segmenter, two, max_delay_ms=50))
    assert quick.masks is not None and slow.masks is not None
    assert counting.sizes == [1, 1]


def test_a_full_queue_answers_overloaded_at_once(segmenter):
    counted(segmenter, delay=0.05)

    async def flood(batcher):
        tasks = [asyncio.ensure_future(batcher.run(TENSOR)) for _ in range(8)]
        await asyncio.sleep(0)  # every task runs up to its first await: queued, or refused
        refused = [t.exception() for t in tasks if t.done()]  # at once: before any run could end
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return refused, results

    options = {"max_batch_size": 1, "max_delay_ms": 0, "max_queue": 2, "workers": 1}
    refused, results = asyncio.run(serving(segmenter, flood, **options))
    assert refused and all(isinstance(e, Overloaded) for e in refused)
    assert all(e.retry_after >= 1 and e.retry_after == int(e.retry_after) for e in refused)
    served = [r for r in results if isinstance(r, list)]
    assert 2 <= len(served) <= 3 and len(served) + len(refused) == 8  # queue of 2, plus the one running


def test_bad_settings_fail_before_anything_is_queued(segmenter):
    prepared = []

    async def bad(batcher):
        with pytest.raises(InputError, match="acceptable keys"):
            await batcher.predict_prepared(lambda: prepared.append(1), {"nope": 1})
        with pytest.raises(InputError, match="between 0 and 1"):
            await batcher.predict(images(1)[0], {"threshold": 3})
        return batcher.stats.runs

    assert asyncio.run(serving(segmenter, bad)) == 0 and prepared == []


def test_a_failing_run_fails_only_its_batch(segmenter):
    counting = counted(segmenter, delay=0.02, fail_on={1})

    async def requests(batcher):
        return await asyncio.gather(*(batcher.predict(i) for i in images(12)), return_exceptions=True)

    results = asyncio.run(serving(segmenter, requests, max_batch_size=4, max_delay_ms=20))
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == counting.sizes[0] and counting.calls >= 3
    assert all(isinstance(e, RuntimeError) and "run 1" in str(e) for e in failed)
    assert all(r.masks is not None for r in results if not isinstance(r, Exception))


def test_a_tensor_of_another_shape_runs_alone(segmenter):
    counted(segmenter, delay=0.02)

    async def mixed(batcher):
        first = asyncio.ensure_future(batcher.run(TENSOR))  # occupies the worker while the rest queue up
        await asyncio.sleep(0.005)
        odd = np.zeros((1, 3, 16, 16), np.float32)  # ONNX Runtime refuses this size
        rest = [batcher.run(TENSOR), batcher.run(odd), batcher.run(TENSOR)]
        return await asyncio.gather(first, *rest, return_exceptions=True)

    results = asyncio.run(serving(segmenter, mixed, max_batch_size=8, max_delay_ms=0, workers=1))
    assert [isinstance(r, Exception) for r in results] == [False, False, True, False]
    assert [r[0].shape for r in results if isinstance(r, list)] == [(1, 2, 32, 32)] * 3


def test_outputs_without_a_batch_axis_fail_the_batch_clearly(segmenter):
    class FirstRowOnly(CountingEngine):
        def run(self, feeds, outputs=None):
            return {k: v[:1] for k, v in super().run(feeds, outputs).items()}

    segmenter.network = segmenter.throughput_engine = FirstRowOnly(segmenter.network, delay=0.1)

    async def requests(batcher):
        # Occupies the worker, so the four queue together; of another shape, it never joins their batch.
        busy = asyncio.ensure_future(batcher.run(np.zeros((1, 3, 16, 16), np.float32)))
        await asyncio.sleep(0.001)
        results = await asyncio.gather(*(batcher.predict(i) for i in images(4)), return_exceptions=True)
        await asyncio.gather(busy, return_exceptions=True)
        return results

    results = asyncio.run(serving(segmenter, requests, max_batch_size=4, max_delay_ms=50, workers=1))
    assert all(isinstance(r, BatchMismatch) and "for a batch of 4" in str(r) for r in results)


def test_a_fixed_batch_graph_is_never_batched_beyond_its_size(tmp_path):
    card = ModelCard(task="classification", classes=["a", "b"], input={"size": (8, 8)}, decoder={"kind": "softmax"})
    logits = {"logits": np.array([[0.0, 1.0]], np.float32)}
    model = fovea.load(constant_outputs(tmp_path / "c.onnx", card, logits, input_shape=[1, 3, 8, 8]))
    counting = counted(model, delay=0.005)
    image = fovea.Image(np.zeros((8, 8, 3), np.uint8))

    async def requests(batcher):
        assert batcher.max_batch_size == 1
        return await asyncio.gather(*(batcher.predict(image, {"top_k": 1}) for _ in range(6)))

    results = asyncio.run(serving(model, requests, max_batch_size=8, max_delay_ms=20))
    assert counting.sizes == [1] * 6 and [r.names for r in results] == [["b"]] * 6


def test_decoding_runs_on_the_loop_when_cheap_and_in_a_thread_when_not(segmenter, monkeypatch):
    where = []
    postprocess = segmenter.postprocess

    def recording(out, settings=None):
        where.append(threading.current_thread() is threading.main_thread())
        if slow:
            time.sleep(0.1)
        return postprocess(out, settings)

    monkeypatch.setattr(segmenter, "postprocess", recording)
    # Thresholds far apart, so a loaded machine (a cold first decode can take several ms) cannot blur them.
    monkeypatch.setattr(batcher_module, "INLINE_POSTPROCESS_S", 0.05)

    async def sequential(batcher):
        for image in images(4):
            await batcher.predict(image)

    slow = False
    asyncio.run(serving(segmenter, sequential))
    assert where == [False, True, True, True]  # measured once in a thread, then inline on the loop
    slow, where[:] = True, []
    asyncio.run(serving(segmenter, sequential))
    assert where == [False, False, False, False]


def test_close_fails_what_is_still_queued_and_refuses_new_work(segmenter):
    counted(segmenter, delay=0.02)

    async def main():
        batcher = DynamicBatcher(segmenter, max_batch_size=1, max_delay_ms=0, workers=1)
        with pytest.raises(Closed):
            await batcher.run(TENSOR)  # not started yet
        await batcher.start()
        pending = [asyncio.ensure_future(batcher.run(TENSOR)) for _ in range(20)]
        await asyncio.sleep(0.03)
        await batcher.aclose()
        results = await asyncio.gather(*pending, return_exceptions=True)
        with pytest.raises(Closed):
            await batcher.predict(images(1)[0])
        assert not batcher.running
        await batcher.start()  # a closed batcher can start again
        again = await batcher.predict(images(1)[0])
        await batcher.aclose()
        return results, again

    results, again = asyncio.run(main())
    closed = [r for r in results if isinstance(r, Closed)]
    assert closed and all("shutting down" in str(r) for r in closed)
    assert 1 <= sum(isinstance(r, list) for r in results) < 20 and again.masks is not None


def test_a_caller_cancelled_before_its_thread_started_is_no_longer_expected(segmenter):
    """A cancelled caller whose preparation never started must not count as "on its way" forever: the next lone
    request still runs where it was prepared instead of queueing for company that never comes."""
    from concurrent.futures import ThreadPoolExecutor

    counting = counted(segmenter)

    async def requests(batcher):
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(1))  # one thread, kept busy: the caller's hop stays queued
        gate = threading.Event()
        busy = loop.run_in_executor(None, gate.wait)
        cancelled = asyncio.ensure_future(batcher.predict(images(1)[0]))
        await asyncio.sleep(0)  # it is now waiting for a thread
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):  # before the thread is freed: its hop never starts
            await cancelled
        gate.set()
        await busy
        return await batcher.predict(images(1)[0])

    result = asyncio.run(serving(segmenter, requests, max_batch_size=8, max_delay_ms=20, workers=1))
    assert result.masks is not None and counting.calls == 1
    assert not counting.thread_names[0].startswith("fovea-batcher")  # alone: ran in its preparing thread
