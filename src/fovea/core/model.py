"""`BaseInferenceModel`: the hook surface for custom models (FLaVor's shape, seed 004).

A subclass says how to build its network and name its outputs; the base class runs the pipeline
`data_reader -> preprocess -> inference -> postprocess -> output_formatter` when called with AiCOCO
`images` and uploaded `files`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from fovea.errors import InputError


class BaseInferenceModel(ABC):
    """Override the abstract hooks; `preprocess`, `inference` and `postprocess` default to pass-through."""

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
        """Read `files` into model input; also return the file names in a new order if it changed them."""

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
        data, reordered = self.data_reader(files=files, **kwargs)
        ordered = match_images(images or [], reordered or files or [])
        out = self.postprocess(self.inference(self.preprocess(data)))
        return self.output_formatter(
            out, images=ordered, categories=self.categories, regressions=self.regressions, data=data
        )


def match_images(images: Sequence[dict[str, Any]], files: Sequence[str]) -> list[dict[str, Any]]:
    """The AiCOCO image entries in the order of `files`, matched by exact file name.

    Exact as in the reference (aicoco-invocations-protocol.md §3): no base-name stripping, no suffix test, so
    `scan_0.dcm` or `upload/0.dcm` never lands on the entry of `0.dcm`.
    """
    if not files:
        return sorted(images, key=lambda image: image.get("index", 0))
    by_name = {str(image.get("file_name")): image for image in images}
    ordered = []
    for name in files:
        entry = by_name.get(name)
        if entry is None:
            raise InputError(f"file {name!r} matches no entry of `images` (by file_name)")
        ordered.append(entry)
    return ordered
