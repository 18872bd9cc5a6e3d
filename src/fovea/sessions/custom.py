"""A custom model (seed 004's `BaseInferenceModel`) as a session: FLaVor's `/invocations`, and V2 and Supervisely.

A custom model reads files, not decoded images, and formats its own answer; the V2 and Supervisely dialects speak
canonical predictions. The bridge: an upload is written to a temporary file under a generated name, the model runs
its whole pipeline on it in this session's worker threads (one by default: a custom model need not be thread-safe),
and the predictions its AiCOCO output strategy built on the way (`captured_predictions`) are what those dialects
render. Which strategy, and so the task and the output classes the dialects announce before any call, the model
says with FLaVor's `self.formatter = AiCOCO...OutputStrategy()` or a `task` attribute; a model that says neither is
served at `/invocations` only.

The upload is decoded by Fovea's own readers first (a JPEG at its smallest scale): the session's limits (bytes,
pixels, frames) hold before the model's reader sees a file, and the image size is what the predictions of image-level
and detection strategies (which cannot know it) are given.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import cv2
import numpy as np

from fovea.core.card import ModelCard
from fovea.core.formats.strategies import STRATEGIES, captured_predictions, strategy_card
from fovea.core.io import DEFAULT_LIMITS, Image, Limits, Volume, read_input
from fovea.core.model import UploadPath
from fovea.core.predictions import Prediction, Task
from fovea.errors import InputError
from fovea.sessions.batcher import Closed, Overloaded
from fovea.sessions.offload import CostAdaptive
from fovea.sessions.requests import InMemoryRequestStore, RequestStore
from fovea.sessions.session import MediaIds, MediaResolver, ModelSession, SessionConfig

T = TypeVar("T")

# The hooks' own arguments; any other keyword a hook takes with a JSON default is a setting clients may change.
_HOOK_ARGUMENTS = frozenset({"self", "files", "images", "categories", "regressions", "data", "model_out", "x", "out"})


def model_task(model: Any) -> str | None:
    """The strategy task a custom model declares: its `formatter`'s (FLaVor's idiom) or its `task` attribute."""
    formatter = getattr(model, "formatter", None)
    task = getattr(formatter, "task", None) or getattr(model, "task", None)
    return task if task in STRATEGIES else None


class CustomSession(MediaIds):
    """One custom model behind every dialect: the surface of `ModelSession` the dialects use, for a model that runs
    its own pipeline on files.

    `call` runs any function on the model's worker threads with a bounded queue (503 beyond it): FLaVor's
    `/invocations` (`fovea.InferAPP`) and the prediction dialects share them.
    """

    runtime = "custom"
    device = None  # the model's own business: Fovea does not know where it runs

    def __init__(
        self,
        model: Callable[..., Any],
        *,
        name: str | None = None,
        limits: Limits = DEFAULT_LIMITS,
        workers: int = 1,
        max_queue: int = 64,
        store: RequestStore | None = None,
        image_resolver: MediaResolver | None = None,
        video_resolver: MediaResolver | None = None,
    ) -> None:
        self.model = model
        self.id = uuid.uuid4().hex
        label = name or type(model).__name__
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "model"
        self.task = model_task(model)
        self.card: ModelCard | None = None
        if self.task is not None:
            card = strategy_card(self.task, getattr(model, "categories", None), getattr(model, "regressions", None))
            self.card = card.model_copy(update={"name": type(model).__name__})
        self.limits = limits
        # A V2 or Supervisely batch holds up to `max_batch_size` images; the model takes them one at a time.
        self.config = SessionConfig(workers=workers, max_queue=max_queue, limits=limits)
        self.default_settings = hook_settings(model)
        self.requests = store or InMemoryRequestStore()
        self.image_resolver = image_resolver  # media ids (`serve-model --media`), as ModelSession takes them
        self.video_resolver = video_resolver
        self.runs = 0
        self._renderers = CostAdaptive()
        self._executor: ThreadPoolExecutor | None = None
        self._waiting = 0

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._executor is not None

    @property
    def workers(self) -> int:
        return self.config.workers or 1

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="fovea-infer")

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    # -- running the model ------------------------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the model's worker threads; Overloaded (503) once `max_queue` calls wait."""
        if self._executor is None:
            raise Closed("the model is not loaded")
        if self._waiting >= self.config.max_queue:
            raise Overloaded(1)
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._waiting -= 1

    def settings(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The hooks' keyword defaults updated with a request's (they reach the hooks as FLaVor's form fields do);
        a value of another type than its default's is an InputError."""
        merged = dict(self.default_settings)
        for key, value in (overrides or {}).items():
            default = self.default_settings.get(key)
            if default is not None and not _same_kind(value, default):
                raise InputError(f"setting {key!r} must be a {type(default).__name__}, like its default {default!r}")
            merged[key] = value
        return merged

    def read(self, data: bytes, name: str = "") -> Image | Volume:
        return read_input(data, name=name, limits=self.limits)

    async def predict_upload(self, data: bytes, name: str, settings: Mapping[str, Any] | None = None) -> Prediction:
        return await self.call(self._predict_file, data, name, self.settings(settings))

    def predict_images_blocking(
        self, chunks: Iterable[list[Image]], settings: Mapping[str, Any] | None = None
    ) -> Iterator[list[Prediction]]:
        """From an asynchronous request's worker thread: decoded images (video frames, an async batch) go to the model
        as PNG files, one at a time on the model's threads."""
        merged = self.settings(settings)
        for images in chunks:
            yield [
                self._blocking(self._predict_file, _png(image), f"{image.name or 'frame'}.png", merged)
                for image in images
            ]

    async def offload(self, render: Callable[..., T], *args: Any) -> T:
        return await self._renderers.call(render, *args)

    # -- in a worker thread -----------------------------------------------------------------------

    def _predict_file(self, data: bytes, name: str, settings: Mapping[str, Any]) -> Prediction:
        # The limits hold before the model's reader sees the file. Only checked and sized here, so a JPEG is decoded at
        # its smallest DCT scale (its original size is still known): a few ms less per request than a full decode.
        item = read_input(data, name=name, limits=self.limits, min_size=(1, 1))
        with tempfile.TemporaryDirectory(prefix="fovea-infer-") as folder:
            path = write_upload(Path(folder), 0, name, data)
            entry = {"id": uuid.uuid4().hex, "index": 0, "file_name": name, "category_ids": None, "regressions": None}
            with captured_predictions() as found:
                self.model(images=[entry], files=[path], **settings)
        self.runs += 1
        if not found:  # the model broke the promise its `task` made: its fault, a 500
            raise RuntimeError(f"{type(self.model).__name__} answered without an AiCOCO output strategy")
        return _sized(found[-1], item)

    def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise Closed("the model is not loaded")
        return self._executor.submit(fn, *args).result()


def hook_settings(model: Any) -> dict[str, Any]:
    """Keyword parameters of the model's hooks that have JSON-able defaults, e.g. `postprocess(out, threshold=0.5)`."""
    found: dict[str, Any] = {}
    for hook in ("data_reader", "preprocess", "inference", "postprocess", "output_formatter"):
        method = getattr(model, hook, None)
        if method is None:
            continue
        for parameter in inspect.signature(method).parameters.values():
            default = parameter.default
            if (
                parameter.name not in _HOOK_ARGUMENTS
                and default is not inspect.Parameter.empty
                and isinstance(default, (type(None), bool, int, float, str))
            ):
                found.setdefault(parameter.name, default)
    return found


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and (isinstance(default, float) or isinstance(value, int))
    return isinstance(value, type(default))


def _sized(prediction: Prediction, item: Image | Volume) -> Prediction:
    """A strategy knows no image size unless its output is a mask: give image-level and detection predictions the
    upload's, so annotations and V2's `image_sizes` carry the real one."""
    if prediction.task is Task.SEGMENTATION:
        return prediction
    size = item.original_size if isinstance(item, Image) else tuple(item.voxels.shape)
    return replace(prediction, size=size)


def _png(image: Image) -> bytes:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image.pixels[..., ::-1]))
    if not ok:
        raise InputError(f"{image.name or 'frame'}: cannot be encoded for the model")
    return encoded.tobytes()


def write_upload(folder: Path, position: int, name: str, data: bytes) -> UploadPath:
    """Store one upload under a generated name (client names are never paths, aicoco-invocations-protocol.md §3)
    that keeps the file's type suffix, since readers such as nibabel choose the format by it."""
    path = folder / f"{position:04d}{_suffix(name)}"
    path.write_bytes(data)
    return UploadPath(str(path), name)


_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")


def _suffix(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name.lower()
    if base.endswith(".nii.gz"):
        return ".nii.gz"
    suffix = PurePosixPath(base).suffix
    return suffix if _SUFFIX.fullmatch(suffix) else ""


# What the dialects serve: deployed weights, or a custom model through its output strategy.
AnySession = ModelSession | CustomSession
