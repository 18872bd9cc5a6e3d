"""`InferAPP`: serve a custom `BaseInferenceModel` behind FLaVor's `GET /ping` + `POST /invocations` (seed 004).

The request side is the AiCOCO contract of reference/aicoco-invocations-protocol.md, checked by the same code as
the built-in models' FLaVor dialect (`images` schema, exact file-name matching, limits, error shapes). The model
side is FLaVor's: uploads are written to a fresh temporary folder so `data_reader(files=[paths])` gets file
paths, every other form field is JSON-decoded and handed to the hooks as a keyword argument, and the folder is
removed when the request ends. The model runs in worker threads, never on the event loop.

A model whose output goes through one of the AiCOCO output strategies, and that says which, is served through V2
and Supervisely as well: `fovea.sessions.custom.CustomSession` is the bridge, and owns the worker threads.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from fovea.core.io import DEFAULT_LIMITS, Limits
from fovea.core.model import BaseInferenceModel
from fovea.errors import InputError
from fovea.server import ops
from fovea.server.dialects import supervisely, v2
from fovea.server.dialects.flavor import json_fields, match_files, render_error, validate_images
from fovea.server.errors import dialect_route, install_http_error_handler
from fovea.server.paths import NormalizePath
from fovea.server.uploads import BodyLimit, read_files, read_form
from fovea.sessions.custom import CustomSession, write_upload
from fovea.sessions.media import MediaFolder

__all__ = ["BaseAiCOCOInputDataModel", "BaseAiCOCOOutputDataModel", "InferAPP", "load_model"]

log = logging.getLogger("fovea.server")


# -- AiCOCO data models (FLaVor's names, so the seed's code ports by changing its imports) ----------


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class AiRegressionItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    regression_id: str
    value: float


class AiImage(_Open):
    id: str
    index: int
    file_name: str
    category_ids: list[str] | None
    regressions: list[AiRegressionItem] | None


class AiAnnotation(_Open):
    id: str
    image_id: str
    object_id: str
    iscrowd: int = 0
    bbox: list[list[int]] | None
    segmentation: list[list[int]] | None


class AiCategory(_Open):
    id: str
    name: str
    supercategory_id: str | None


class AiRegression(_Open):
    id: str
    name: str
    superregression_id: str | None


class AiObject(_Open):
    id: str
    category_ids: list[str] | None
    regressions: list[AiRegressionItem] | None


class AiMeta(_Open):
    category_ids: list[str] | None = None
    regressions: list[AiRegressionItem] | None = None


class BaseAiCOCOInputDataModel(_Open):
    """What `/invocations` hands the model: `images` entries, `files` paths, and any other fields."""

    images: list[AiImage]
    files: list[str]


class BaseAiCOCOOutputDataModel(BaseModel):
    """The AiCOCO response: exactly these six keys, in this order (reference §5)."""

    model_config = ConfigDict(extra="forbid")
    images: list[AiImage]
    annotations: list[AiAnnotation]
    categories: list[AiCategory]
    regressions: list[AiRegression]
    objects: list[AiObject]
    meta: AiMeta


# -- the app --------------------------------------------------------------------------------------


class InferAPP:
    """FLaVor's `InferAPP`: `InferAPP(infer_function=MyModel(), input_data_model=..., output_data_model=...).run()`.

    `infer_function` is called as `infer_function(images=[...], files=[paths], **fields)`; a
    `BaseInferenceModel` instance is the usual one, a class is instantiated here. `input_data_model` checks
    those arguments (a violation is 400); `output_data_model` checks the result (a violation is the model's
    fault: 500, logged). Calls run on `workers` threads (one by default: a custom model need not be
    thread-safe); at most `max_queue` requests wait for one, beyond that the answer is 503 with Retry-After.

    A model that names its AiCOCO output strategy (`self.formatter = AiCOCO...OutputStrategy()`, or a `task`
    attribute) is also served through the Open Inference Protocol (`/v2/...`, encoded images in) and the
    Supervisely protocol, on the same threads (sessions/custom.py). With a `media` folder, its images and videos
    answer Supervisely's id-based calls (id = sorted position), as `serve-model --media` does for ONNX weights.
    """

    def __init__(
        self,
        infer_function: Callable[..., Any] | type[BaseInferenceModel],
        input_data_model: type[BaseModel] | None = BaseAiCOCOInputDataModel,
        output_data_model: type[BaseModel] | None = BaseAiCOCOOutputDataModel,
        *,
        limits: Limits = DEFAULT_LIMITS,
        workers: int = 1,
        max_queue: int = 64,
        media: Path | None = None,
    ) -> None:
        if isinstance(infer_function, type):
            infer_function = infer_function()
        if not callable(infer_function):
            raise TypeError(f"infer_function must be callable, not {type(infer_function).__name__}")
        self.infer_function = infer_function
        self.input_data_model = input_data_model
        self.output_data_model = output_data_model
        self.limits = limits
        folder = MediaFolder(media, limits) if media is not None else None
        self.session = CustomSession(
            infer_function,
            limits=limits,
            workers=workers,
            max_queue=max_queue,
            image_resolver=folder.image if folder else None,
            video_resolver=folder.video if folder else None,
        )
        self.app = self._build()

    def run(self, host: str = "127.0.0.1", port: int = 9111, **uvicorn_options: Any) -> None:
        """Serve until interrupted (FLaVor's default port). Pass host="0.0.0.0" to listen on every interface."""
        import uvicorn

        options = {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 5, **uvicorn_options}
        uvicorn.run(self.app, host=host, port=port, **options)

    def _build(self) -> FastAPI:
        session = self.session

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            await session.start()
            try:
                yield
            finally:
                await session.aclose()

        name = type(self.infer_function).__name__
        app = FastAPI(title=f"Fovea InferAPP: {name}", lifespan=lifespan, redirect_slashes=False)
        app.state.session = session
        router = APIRouter(route_class=dialect_route(render_error))

        @router.get("/ping")
        async def ping() -> Response:
            if not session.running:
                return render_error(503, "the model is not ready", None, {"Retry-After": "1"})
            return Response(status_code=204)

        @router.post("/invocations")
        async def invocations(request: Request) -> Response:
            return await self._invoke(request)

        app.include_router(router)
        if session.card is not None:  # the model's strategy says what its predictions are
            app.include_router(v2.router)
            app.include_router(supervisely.router)
        app.include_router(ops.health_router)
        install_http_error_handler(app)
        app.add_middleware(BodyLimit, max_bytes=self.limits.max_bytes)
        app.add_middleware(NormalizePath)
        return app

    async def _invoke(self, request: Request) -> Response:
        form = await read_form(request, self.limits)
        if form.get("tables") is not None:
            raise InputError("tabular requests (`tables`) are not supported")
        files = await read_files(form)
        fields = json_fields(form)
        entries = validate_images(fields.pop("images", None))
        if not files:
            raise InputError("`files` is required: upload at least one file")
        match_files(files, entries)
        result = await self.session.call(self._call, files, entries, fields)
        # Checking and encoding the output (~3 ms for 1000 categories) leave the model's thread free for the next call.
        body = await self.session.offload(self._encoded, result)
        return Response(body, media_type="application/json")

    def _call(self, files: list[tuple[str, bytes]], entries: list[dict[str, Any]], fields: dict[str, Any]) -> Any:
        """In a worker thread: write the uploads and run the model; the folder goes in any case."""
        with tempfile.TemporaryDirectory(prefix="fovea-infer-") as folder:
            paths = [write_upload(Path(folder), i, name, data) for i, (name, data) in enumerate(files)]
            arguments = {**fields, "images": entries, "files": paths}
            if self.input_data_model is not None:
                try:
                    self.input_data_model.model_validate(arguments)
                except ValidationError as exc:
                    raise InputError("invalid request", _problems(exc)) from None
            return self.infer_function(**arguments)

    def _encoded(self, result: Any) -> bytes:
        # As JSONResponse writes it: a NaN or Infinity the model produced is a server fault (500), not a bad token.
        return json.dumps(self._checked(result), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()

    def _checked(self, result: Any) -> Any:
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json")
        if self.output_data_model is None:
            return result
        try:
            return self.output_data_model.model_validate(result).model_dump(mode="json")
        except ValidationError as exc:
            # The client sent nothing wrong: the model broke its contract, a server fault (500, logged).
            raise RuntimeError(f"the model's output is not a valid {self.output_data_model.__name__}: {exc}") from None


def _problems(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(error["loc"]), "msg": error["msg"]} for error in exc.errors()]


# -- `fovea serve-model package.module:ClassName` ---------------------------------------------------


def load_model(spec: str, *, search_path: Sequence[str] = (".",)) -> Callable[..., Any]:
    """The model named `package.module:Name`: a class is instantiated with no arguments, an instance (or any
    other callable taking `images`, `files` and fields) is used as is.

    `search_path` folders are put on `sys.path` first, as uvicorn does with its app dir, so a module next to
    the caller imports.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{spec!r} must look like package.module:ClassName")
    for folder in search_path:
        resolved = str(Path(folder).resolve())
        if resolved not in sys.path:
            sys.path.insert(0, resolved)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {spec}: {exc}") from None
    try:
        model = target() if isinstance(target, type) else target
    except TypeError as exc:  # abstract hooks left out, or a constructor that needs arguments
        raise ValueError(f"cannot create {spec}: {exc}") from None
    if not callable(model):
        raise ValueError(f"{spec} is not a model: {type(model).__name__} is not callable")
    return model
