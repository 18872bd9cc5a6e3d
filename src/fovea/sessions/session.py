"""A session: deployed weights answering requests.

It owns the loaded model, the deployment's default settings, a dynamic batcher that lets concurrent
requests share one engine run, and the store of asynchronous requests (video, batches) clients poll.
The three dialects (Supervisely, FLaVor/AiCOCO, Open Inference Protocol) only translate to and from it.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fovea.core.io import DEFAULT_LIMITS, Image, Limits, Volume, read_input
from fovea.core.onnx_model import Batch, OnnxModel
from fovea.core.predictions import Prediction
from fovea.core.settings import resolve_settings
from fovea.errors import InputError
from fovea.sessions.batcher import DynamicBatcher
from fovea.sessions.requests import InMemoryRequestStore, RequestStore

# V2 model names go into URL paths unescaped (see the Open Inference Protocol reference, §1).
_MODEL_NAME = re.compile(r"[^A-Za-z0-9_.-]+")

# Resolves a platform media id (an image or a video the caller may view) to its bytes and file name.
MediaResolver = Callable[[int], tuple[bytes, str]]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """How a session serves: batching, queue bound and input limits."""

    max_batch_size: int = 8
    max_delay_ms: float = 2.0
    max_queue: int = 256
    workers: int | None = None  # engine runs side by side under load; None: one per core
    limits: Limits = DEFAULT_LIMITS


class _IsVolume(Exception):
    """Raised by an upload's preparation when it turns out to be a volume."""


class ModelSession:
    """One deployed weights file: `await session.predict(image)` and friends."""

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
        self.image_resolver = image_resolver
        self.video_resolver = video_resolver

    # -- lifecycle --------------------------------------------------------------------------------

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

    # -- prediction -------------------------------------------------------------------------------

    def read(self, data: bytes, name: str = "") -> Image | Volume:
        """Decode an upload in the calling thread, within limits, at reduced JPEG scale where the model allows."""
        return read_input(data, name=name, limits=self.limits, min_size=self.model.preprocessor.min_decode_size)

    async def decode(self, data: bytes, name: str = "") -> Image | Volume:
        """`read` off the event loop."""
        return await asyncio.to_thread(self.read, data, name)

    def prepare_image(self, data: bytes, name: str) -> Batch:
        """Decode and preprocess one 2-D upload in the calling thread (one hop off the event loop)."""
        item = self.read(data, name)
        if isinstance(item, Volume):
            raise InputError(f"{name or 'input'} is a volume, but {self.card.name} takes 2-D images here")
        return self.model.preprocess([item])

    async def predict(self, image: Image, settings: Mapping[str, Any] | None = None) -> Prediction:
        """One image through the dynamic batcher."""
        prediction = await self.batcher.predict(image, self.settings(settings))
        prediction.source = image.name
        return prediction

    async def predict_image_bytes(
        self, data: bytes, name: str, settings: Mapping[str, Any] | None = None
    ) -> Prediction:
        """Decode and predict one 2-D upload in one worker-thread hop; a volume is an InputError."""
        merged = self.settings(settings)
        prediction = await self.batcher.predict_prepared(lambda: self.prepare_image(data, name), merged)
        prediction.source = name
        return prediction

    async def predict_bytes(self, data: bytes, name: str, settings: Mapping[str, Any] | None = None) -> Prediction:
        """Decode and predict one upload; a volume goes through `predict_volume` in a worker thread."""
        volume: list[Volume] = []

        def prepare() -> Batch:
            # Decode and preprocess in one worker-thread hop: the hot path of every image request.
            item = self.read(data, name)
            if isinstance(item, Volume):
                volume.append(item)
                raise _IsVolume
            return self.model.preprocess([item])

        try:
            prediction = await self.batcher.predict_prepared(prepare, self.settings(settings))
        except _IsVolume:
            return await self.predict_volume(volume[0], settings)
        prediction.source = name
        return prediction

    async def predict_volume(self, volume: Volume, settings: Mapping[str, Any] | None = None) -> Prediction:
        return await asyncio.to_thread(self.model.predict_volume, volume, self.settings(settings))

    async def predict_slices(self, volume: Volume, settings: Mapping[str, Any] | None = None) -> list[Prediction]:
        return await asyncio.to_thread(self.model.predict_slices, volume, self.settings(settings))

    def resolve_image(self, image_id: int) -> tuple[bytes, str]:
        """An image the platform stores, by id; LookupError (a 404 to clients) when there is none."""
        if self.image_resolver is None:
            raise LookupError(f"image {image_id} is not known to this session")
        return self.image_resolver(image_id)

    def resolve_video(self, video_id: int) -> tuple[bytes, str]:
        if self.video_resolver is None:
            raise LookupError(f"video {video_id} is not known to this session")
        return self.video_resolver(video_id)
