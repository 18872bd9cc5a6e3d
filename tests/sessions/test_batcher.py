"""Dynamic batching: concurrent requests share engine runs and get the same answers as alone."""

import asyncio
import time

import numpy as np
import pytest

import fovea
from fovea.core.card import ModelCard
from fovea.errors import InputError
from fovea.sessions.batcher import Closed, DynamicBatcher, Overloaded
from tests.core.graphs import bright_pixels_segmenter, constant_outputs


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
    def __init__(self, engine):
        self.engine, self.calls, self.sizes = engine, 0, []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def run(self, feeds, outputs=None):
        self.calls += 1
        self.sizes.append(len(next(iter(feeds.values()))))
        time.sleep(0.01)  # a network that takes a moment, so requests pile up
        return self.engine.run(feeds, outputs)


def test_concurrent_requests_share_runs_and_match_sequential_results(segmenter):
    expected = [segmenter.predict(image) for image in images(16)]
    counting = CountingEngine(segmenter.network)
    segmenter.network = counting

    async def main():
        batcher = DynamicBatcher(segmenter, max_batch_size=8, max_delay_ms=20)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.predict(image) for image in images(16)))
        finally:
            await batcher.aclose()

    got = asyncio.run(main())
    assert counting.calls < 16 and max(counting.sizes) <= 8 and sum(counting.sizes) == 16
    for prediction, reference in zip(got, expected, strict=True):
        np.testing.assert_array_equal(prediction.masks, reference.masks)


def test_a_lone_request_waits_no_longer_than_the_delay(segmenter):
    async def main():
        batcher = DynamicBatcher(segmenter, max_batch_size=8, max_delay_ms=30)
        await batcher.start()
        await batcher.predict(images(1)[0])  # warm-up
        start = time.perf_counter()
        await batcher.predict(images(1)[0])
        elapsed = time.perf_counter() - start
        await batcher.aclose()
        return elapsed

    assert asyncio.run(main()) < 0.03 + 0.25


def test_full_queue_is_overloaded_and_bad_settings_fail_fast(segmenter):
    async def main():
        batcher = DynamicBatcher(segmenter, max_batch_size=1, max_delay_ms=0, max_queue=1)
        with pytest.raises(Closed):
            await batcher.run(np.zeros((1, 3, 32, 32), np.float32))
        await batcher.start()
        with pytest.raises(InputError, match="acceptable keys"):
            await batcher.predict(images(1)[0], {"nope": 1})
        segmenter.network = CountingEngine(segmenter.network)  # slow runs, so the queue fills
        tensors = [np.zeros((1, 3, 32, 32), np.float32)] * 6
        results = await asyncio.gather(*(batcher.run(t) for t in tensors), return_exceptions=True)
        await batcher.aclose()
        return results

    results = asyncio.run(main())
    overloaded = [r for r in results if isinstance(r, Overloaded)]
    assert overloaded and overloaded[0].retry_after >= 1
    assert any(isinstance(r, list) for r in results)


def test_a_failing_run_fails_only_its_batch(tmp_path):
    card = ModelCard(task="classification", classes=["a", "b"], input={"size": (8, 8)}, decoder={"kind": "softmax"})
    model = fovea.load(constant_outputs(tmp_path / "c.onnx", card, {"logits": np.array([[0.0, 1.0]], np.float32)}))

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=4, max_delay_ms=0)
        await batcher.start()
        bad = batcher.run(np.zeros((1, 3, 9, 9), np.float32))  # wrong size: ONNX Runtime refuses it
        with pytest.raises(Exception, match=r"(?i)dimension|shape|invalid"):
            await bad
        good = await batcher.run(np.zeros((1, 3, 8, 8), np.float32))
        await batcher.aclose()
        return good

    assert asyncio.run(main())[0].shape == (1, 2)


def test_close_fails_what_is_still_queued(segmenter):
    async def main():
        batcher = DynamicBatcher(segmenter, max_batch_size=1, max_delay_ms=0)
        await batcher.start()
        segmenter.network = CountingEngine(segmenter.network)
        pending = [asyncio.ensure_future(batcher.run(np.zeros((1, 3, 32, 32), np.float32))) for _ in range(20)]
        await asyncio.sleep(0.02)
        await batcher.aclose()
        return await asyncio.gather(*pending, return_exceptions=True)

    results = asyncio.run(main())
    assert any(isinstance(r, Closed) for r in results) and any(isinstance(r, list) for r in results)
