"""`BaseInferenceModel`: the hook surface for custom models (FLaVor's shape, seed 004).

A subclass says how to build its network and name its outputs; the base class runs the pipeline
`data_reader -> preprocess -> inference -> postprocess -> output_formatter` when called with AiCOCO
`images` and uploaded `files`. `fovea.InferAPP` serves such a model behind `/ping` + `/invocations`, and through
V2 and Supervisely when it names its output strategy.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fovea.errors import InputError


class UploadPath(str):
    """A path to an uploaded file that remembers the name the client uploaded it under.

    It is a plain `str` to the hooks (open it, hand it to pydicom or nibabel); the base class uses
    `file_name` to pair files with `images` entries, since the path on disk is a generated one.
    """

    file_name: str

    def __new__(cls, path: str, file_name: str) -> UploadPath:
        self = super().__new__(cls, path)
        self.file_name = file_name
        return self


class BaseInferenceModel(ABC):
    """Override the abstract hooks; `preprocess`, `inference` and `postprocess` default to pass-through.

    Keyword arguments given to the call (FLaVor's extra form fields, e.g. `metadata`) reach every hook
    that names them or takes `**kwargs`; a hook's own arguments (`files`, `images`, ...) always win.
    Raise `fovea.InputError` from a hook for input the model cannot take: a server answers it with 400.

    A model whose `output_formatter` goes through one of the AiCOCO output strategies, and that says which (FLaVor's
    `self.formatter = AiCOCO...OutputStrategy()`, or `task`), is also served through V2 and Supervisely; the hooks'
    keyword arguments with defaults (`postprocess(self, out, threshold=0.5)`) become its inference settings there.
    """

    # "classification", "detection", "segmentation" or "regression": the strategy `output_formatter` uses, when it
    # keeps none in `self.formatter`.
    task: str | None = None

    def __init__(self) -> None:
        self.network = self.define_inference_network()
        self.categories = self.set_categories()
        self.regressions = self.set_regressions()

    @abstractmethod
    def define_inference_network(self) -> Any:
        """Build and return the network (any callable); it becomes `self.network`."""

    @abstractmethod
    def set_categories(self) -> list[dict[str, Any]] | None:
        """The output categories, `[{"name": ..., "supercategory_name": ...}]`, or None."""

    @abstractmethod
    def set_regressions(self) -> list[dict[str, Any]] | None:
        """The regression outputs, `[{"name": ...}]`, or None."""

    @abstractmethod
    def data_reader(self, files: Sequence[str] | None = None, **kwargs: Any) -> tuple[Any, list[str] | None]:
        """Read `files` into model input; also return the files in a new order if it changed them."""

    def preprocess(self, data: Any) -> Any:
        return data

    def inference(self, x: Any) -> Any:
        return self.network(x)

    def postprocess(self, out: Any) -> Any:
        return out

    @abstractmethod
    def output_formatter(
        self,
        model_out: Any,
        images: Sequence[dict[str, Any]],
        categories: list[dict[str, Any]] | None = None,
        regressions: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Turn the post-processed output into the response (AiCOCO for `/invocations`)."""

    def __call__(
        self,
        images: Sequence[dict[str, Any]] | None = None,
        files: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Any:
        files = list(files or [])
        data, reordered = _call_hook(self.data_reader, (), {"files": files}, kwargs)
        ordered = match_images(images or [], upload_names(reordered or files, files))
        x = _call_hook(self.preprocess, (data,), {}, kwargs)
        out = _call_hook(self.inference, (x,), {}, kwargs)
        out = _call_hook(self.postprocess, (out,), {}, kwargs)
        own = {"images": ordered, "categories": self.categories, "regressions": self.regressions, "data": data}
        return _call_hook(self.output_formatter, (out,), own, kwargs)


def _call_hook(hook: Callable[..., Any], args: tuple[Any, ...], own: dict[str, Any], extra: Mapping[str, Any]) -> Any:
    """`hook(*args, **own, **extra)`, passing only the `extra` keywords the hook's signature accepts, so a
    hook written for FLaVor (`preprocess(self, data)`) keeps working when a request carries fields."""
    accepted = _keywords(hook)
    chosen = dict(extra) if accepted is None else {k: v for k, v in extra.items() if k in accepted}
    chosen.update(own)
    return hook(*args, **chosen)


def _keywords(hook: Callable[..., Any]) -> frozenset[str] | None:
    """Names `hook` takes by keyword; None when it takes `**kwargs` (then every name)."""
    parameters = inspect.signature(hook).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(p.name for p in parameters if p.kind in kinds)


def upload_names(files: Sequence[str], uploads: Sequence[str]) -> list[str]:
    """The client's file names for `files`: an `UploadPath` (or a plain string equal to one of `uploads`)
    stands for the name it was uploaded under; any other string is taken as the name itself."""
    names = {str(u): u.file_name for u in uploads if isinstance(u, UploadPath)}
    return [f.file_name if isinstance(f, UploadPath) else names.get(str(f), str(f)) for f in files]


def match_images(images: Sequence[dict[str, Any]], files: Sequence[str]) -> list[dict[str, Any]]:
    """The AiCOCO image entries in the order of `files`, matched by exact file name.

    Exact as in the reference (aicoco-invocations-protocol.md §3): no base-name stripping, no suffix test, so
    `scan_0.dcm` or `upload/0.dcm` never lands on the entry of `0.dcm`. Several entries naming one file (the
    slices of a NIfTI volume) all follow it, in `index` order.
    """
    if not files:
        return sorted(images, key=lambda image: image.get("index", 0))
    by_name: dict[str, list[dict[str, Any]]] = {}
    for image in sorted(images, key=lambda image: image.get("index", 0)):
        by_name.setdefault(str(image.get("file_name")), []).append(image)
    ordered = []
    for name in dict.fromkeys(files):
        entries = by_name.get(name)
        if entries is None:
            raise InputError(f"file {name!r} matches no entry of `images` (by file_name)")
        ordered += entries
    return ordered
