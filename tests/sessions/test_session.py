"""ModelSession: asynchronous requests' images go through the same batcher as every upload."""

import asyncio

import numpy as np
import pytest

import fovea
from fovea.core.card import ModelCard
from fovea.errors import InputError
from fovea.sessions.session import ModelSession
from tests.core.graphs import bright_pixels_segmenter


@pytest.fixture
def segmenter(tmp_path):
    card = ModelCard(
        task="segmentation", classes=["background", "bright"], input={"size": (32, 32)}, decoder={"kind": "argmax"}
    )
    return fovea.load(bright_pixels_segmenter(tmp_path / "seg.onnx", card))


def banded(n):
    """Images told apart by the height of a bright band."""
    out = []
    for k in range(n):
        pixels = np.zeros((40, 40, 3), np.uint8)
        pixels[: 2 * k + 2, :, 0] = 255
        out.append(fovea.Image(pixels, name=f"img{k}"))
    return out


def in_worker_thread(session, work):
    """Run `work()` in a worker thread while the session is started, as an asynchronous request does."""

    async def main():
        await session.start()
        try:
            return await asyncio.to_thread(work)
        finally:
            await session.aclose()

    return asyncio.run(main())


def test_blocking_chunks_run_in_the_sessions_batcher_in_order(segmenter):
    session = ModelSession(segmenter)
    images = banded(5)
    chunks = in_worker_thread(session, lambda: list(session.predict_images_blocking([images[:3], images[3:]])))
    assert [[p.source for p in chunk] for chunk in chunks] == [["img0", "img1", "img2"], ["img3", "img4"]]
    expected = [segmenter.predict(image) for image in images]
    for got, want in zip([p for chunk in chunks for p in chunk], expected, strict=True):
        assert np.array_equal(got.masks, want.masks)  # the same answers as alone
    assert session.batcher.stats.items == 5  # every image ran in the batcher


def test_a_chunk_that_fails_to_read_comes_after_the_chunk_before_it(segmenter):
    session = ModelSession(segmenter)
    images = banded(3)

    def chunks():
        yield images[:2]
        raise InputError("frame 2 is unreadable")

    def work():
        delivered = []
        with pytest.raises(InputError, match="frame 2"):
            for chunk in session.predict_images_blocking(chunks()):
                delivered.append([p.source for p in chunk])
        return delivered

    assert in_worker_thread(session, work) == [["img0", "img1"]]
