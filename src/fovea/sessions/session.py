"""A session: deployed weights answering requests.

It owns the loaded model, the deployment's default settings, a dynamic batcher that lets concurrent
requests share one engine run, and the store of asynchronous requests (video, batches) clients poll.
The three dialects (Supervisely, FLaVor/AiCOCO, Open Inference Protocol) only translate to and from it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np

from fovea.core.io import DEFAULT_LIMITS, Image, Limits, Volume, read_input
from fovea.core.onnx_model import Batch, OnnxModel
from fovea.core.predictions import Prediction
from fovea.core.settings import resolve_settings
from fovea.errors import InputError, NotFound
from fovea.sessions.batcher import DynamicBatcher, Overloaded
from fovea.sessions.offload import CostAdaptive
from fovea.sessions.requests import InMemoryRequestStore, RequestStore

# V2 model names go into URL paths unescaped (see the Open Inference Protocol reference, §1).
_MODEL_NAME = re.compile(r"[^A-Za-z0-9_.-]+")

T = TypeVar("T")
OVERLOADED_WAIT_S = 0.05  # an asynchronous request's worker, before it offers a batch to a full queue again

# Resolves a platform media id (an image or a video the caller may view) to its bytes and file name.
MediaResolver = Callable[[int], tuple[bytes, str]]


class MediaIds:
    """The id-based calls' media (`inference_image_id`, `inference_video_id`): the platform's stored files, or
    `serve-model --media`'s folder; a session without resolvers knows no ids."""

    image_resolver: MediaResolver | None = None
    video_resolver: MediaResolver | None = None

    def resolve_image(self, image_id: int) -> tuple[bytes, str]:
        """An image by id; NotFound (a 404 to clients) when there is none."""
        if self.image_resolver is None:
            raise NotFound(f"image {image_id} is not known to this session")
        return self.image_resolver(image_id)

    def resolve_video(self, video_id: int) -> tuple[bytes, str]:
        if self.video_resolver is None:
            raise NotFound(f"video {video_id} is not known to this session")
        return self.video_resolver(video_id)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """How a session serves: batching, queue bound and input limits."""

    max_batch_size: int = 8
    max_delay_ms: float = 2.0
    max_queue: int = 256
    workers: int | None = None  # engine runs side by side under load; None: one per core
    limits: Limits = DEFAULT_LIMITS


class ModelSession(MediaIds):
    """One deployed weights file. Every upload of every dialect takes one path: `prepare_upload` (decode and
    preprocess in a worker thread), the batcher's shared run (`run_upload`), decoding the outputs with the
    request's settings (`predict_upload`); asynchronous requests feed the same batcher from their worker threads
    (`predict_images_blocking`)."""

    def __init__(
        self,
        model: OnnxModel,
        *,
        session_id: str | None = None,
        name: str | None = None,
        settings: Mapping[str, Any] | None = None,
        config: SessionConfig = SessionConfig(),
        store: RequestStore | None = None,
        image_resolver: MediaResolver | None = None,
        video_resolver: MediaResolver | None = None,
    ) -> None:
        self.model = model
        self.card = model.card
        self.id = session_id or uuid.uuid4().hex
        self.name = _MODEL_NAME.sub("-", name or self.card.name).strip("-") or "model"
        self.config = config
        self.limits = config.limits
        # The deployment's settings become this session's defaults; each request may override them.
        self.default_settings = resolve_settings(self.card, settings)
        self.batcher = DynamicBatcher(
            model,
            max_batch_size=config.max_batch_size,
            max_delay_ms=config.max_delay_ms,
            max_queue=config.max_queue,
            workers=config.workers,
        )
        self.requests = store or InMemoryRequestStore()
        self._renderers = CostAdaptive()
        self.image_resolver = image_resolver
        self.video_resolver = video_resolver

    # -- lifecycle --------------------------------------------------------------------------------

    runtime = "onnxruntime"

    @property
    def running(self) -> bool:
        return self.batcher.running

    @property
    def runs(self) -> int:
        """Network runs so far (several requests may share one)."""
        return self.batcher.stats.runs

    @property
    def workers(self) -> int:
        """Engine runs that may go side by side."""
        return self.batcher.workers

    @property
    def device(self) -> str:
        return "cuda" if "CUDAExecutionProvider" in self.model.network.providers else "cpu"

    async def start(self) -> None:
        await self.batcher.start()

    async def aclose(self) -> None:
        await self.batcher.aclose()

    # -- settings ---------------------------------------------------------------------------------

    def settings(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The session's defaults updated with a request's overrides (validated; InputError if bad)."""
        if not overrides:
            return dict(self.default_settings)
        checked = resolve_settings(self.card, overrides)
        return {**self.default_settings, **{key: checked[key] for key in overrides}}

    # -- prediction: every upload of every dialect takes this one path ----------------------------

    def read(self, data: bytes, name: str = "") -> Image | Volume:
        """Decode an upload in the calling thread, within limits, at reduced JPEG scale where the model allows."""
        preprocessor = self.model.preprocessor
        return read_input(
            data, name=name, limits=self.limits, min_size=preprocessor.min_decode_size, window=preprocessor.window
        )

    def prepare_upload(self, data: bytes, name: str) -> Batch:
        """Decode and preprocess one 2-D upload in the calling thread (a worker thread: the loop never decodes).

        A volume is an InputError here: volumes go through `predict_volume`.
        """
        item = self.read(data, name)
        if isinstance(item, Volume):
            raise InputError(f"{name or 'input'} is a volume, but {self.card.name} takes 2-D images here")
        return self.model.preprocess([item])

    async def run_upload(
        self, data: bytes, name: str, timing: dict[str, float] | None = None
    ) -> tuple[Batch, list[np.ndarray]]:
        """One upload to the network: `prepare_upload` in one worker-thread hop, then its rows of a batched run.

        The raw outputs, for dialects that return them (V2); `timing` as in `DynamicBatcher.run`.
        """
        return await self.batcher.prepare_and_run(partial(self.prepare_upload, data, name), timing)

    async def predict_upload(self, data: bytes, name: str, settings: Mapping[str, Any] | None = None) -> Prediction:
        """One upload to a prediction with the session's settings updated by `settings`: `run_upload`, then decoding
        the outputs (on the loop while that has been measured cheap, else in a worker thread)."""
        merged = self.settings(settings)  # bad settings fail before anything is decoded
        batch, outputs = await self.run_upload(data, name)
        [prediction] = await self.batcher.postprocess(outputs, batch, merged)
        return prediction

    def predict_images_blocking(
        self, chunks: Iterable[list[Image]], settings: Mapping[str, Any] | None = None
    ) -> Iterator[list[Prediction]]:
        """From a worker thread (an asynchronous request): each chunk's predictions, in order, through the batcher.

        A chunk's network run shares the cores with concurrent requests like any upload's; the next chunk is
        preprocessed while the last one runs. A chunk holds at most `max_batch_size` images.
        """
        merged = self.settings(settings)
        pending: tuple[Batch, Future] | None = None
        chunks = iter(chunks)
        while True:
            try:
                images = next(chunks, None)
            except BaseException:  # a chunk that cannot be read ends the run after the one before it is delivered
                if pending is not None:
                    yield self._predictions(*pending, merged)
                raise
            if images is None:
                break
            submitted = self._submit_waiting(partial(self.model.preprocess, images))
            if pending is not None:
                yield self._predictions(*pending, merged)
            pending = submitted
        if pending is not None:
            yield self._predictions(*pending, merged)

    def _submit_waiting(self, prepare: Callable[[], Batch]) -> tuple[Batch, Future]:
        """`prepare_and_submit`, waiting while the queue is full: a long video waits its turn instead of failing
        halfway (an HTTP caller gets 503 + Retry-After instead, and may come back)."""
        while True:
            try:
                return self.batcher.prepare_and_submit(prepare)
            except Overloaded:
                time.sleep(OVERLOADED_WAIT_S)

    def _predictions(self, batch: Batch, future: Future, settings: Mapping[str, Any]) -> list[Prediction]:
        return self.model.postprocess((future.result(), batch), settings)

    async def offload(self, render: Callable[..., T], *args: Any) -> T:
        """`render(*args)` (building an answer: AiCOCO, annotations) on the loop while it has been measured cheap,
        in a worker thread when not: a segmentation's contours or bitmaps must not hold up other requests."""
        return await self._renderers.call(render, *args)

    async def predict_volume(self, volume: Volume, settings: Mapping[str, Any] | None = None) -> Prediction:
        """A whole volume (a 3-D model, or a 2-D segmenter slice by slice) in a worker thread, outside the batcher."""
        return await asyncio.to_thread(self.model.predict_volume, volume, self.settings(settings))

    async def predict_slices(self, volume: Volume, settings: Mapping[str, Any] | None = None) -> list[Prediction]:
        return await asyncio.to_thread(self.model.predict_slices, volume, self.settings(settings))
