"""The generic card-driven ONNX model: any weights file with a model card, any of the five tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fovea.core import tasks
from fovea.core.card import ModelCard, load_card
from fovea.core.engines import OnnxEngine
from fovea.core.engines.onnxruntime import default_threads
from fovea.core.geometry import Geometry
from fovea.core.io import DEFAULT_LIMITS, Image, Limits, Volume, read_dicom_series, read_input
from fovea.core.model import BaseInferenceModel
from fovea.core.predictions import Prediction, Task
from fovea.core.preprocess import Preprocessor
from fovea.core.settings import resolve_settings
from fovea.errors import CardError, InputError

Source = str | Path | bytes | np.ndarray | Image
Progress = Callable[[int], None]


@dataclass(slots=True)
class Batch:
    """A preprocessed batch: the network input and how each image maps back to its original."""

    tensor: np.ndarray
    geometries: list[Geometry]
    names: list[str]


class OnnxModel(BaseInferenceModel):
    """A weights file driven by its model card.

    `predict` serves one request with all cores; `predict_batch` runs one single-threaded pipeline
    per core (decode, preprocess, run, decode outputs), which keeps every core busy without the
    pipelines fighting over ONNX Runtime's thread pool.
    """

    def __init__(
        self,
        path: str | Path,
        card: ModelCard | None = None,
        *,
        providers: list[str] | None = None,
        threads: int | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.path = Path(path)
        self._card = card
        self._providers = providers
        self._threads = threads
        self.limits = limits
        super().__init__()

    # -- the BaseInferenceModel hooks -------------------------------------------------------------

    def define_inference_network(self) -> OnnxEngine:
        engine = OnnxEngine(self.path, providers=self._providers, threads=self._threads)
        self.card = self._card or load_card(self.path, engine.metadata)
        self._check_card(engine)
        self.preprocessor = Preprocessor(self.card.input)
        self.input_name = self.card.input.name or engine.input_names[0]
        self.output_names = list(self.card.decoder.outputs or engine.outputs)
        return engine

    def set_categories(self) -> list[dict[str, Any]] | None:
        if not self.card.classes:
            return None
        return [{"name": c.name, "supercategory_name": c.supercategory} for c in self.card.classes]

    def set_regressions(self) -> list[dict[str, Any]] | None:
        return [{"name": name} for name in self.card.regressions] or None

    def data_reader(self, files: Sequence[str] | None = None, **kwargs: Any) -> tuple[list[Image | Volume], None]:
        return [self.read(f) for f in files or []], None

    def preprocess(self, data: list[Image]) -> Batch:
        tensor, geometries = self.preprocessor(data)
        return Batch(tensor, geometries, [image.name for image in data])

    def inference(self, x: Batch) -> tuple[list[np.ndarray], Batch]:
        return self.run(x.tensor, self.network), x

    def postprocess(
        self, out: tuple[list[np.ndarray], Batch], settings: Mapping[str, Any] | None = None
    ) -> list[Prediction]:
        outputs, batch = out
        predictions = tasks.decode(self.card, outputs, batch.geometries, resolve_settings(self.card, settings))
        for prediction, name in zip(predictions, batch.names, strict=True):
            prediction.source = name
        return predictions

    def output_formatter(self, model_out: list[Prediction], images: Sequence[dict[str, Any]], **kwargs: Any) -> Any:
        from fovea.core.formats import to_aicoco

        return to_aicoco(model_out, list(images), self.card)

    # -- the prediction API -----------------------------------------------------------------------

    @property
    def task(self) -> Task:
        return self.card.task

    def read(self, source: Source) -> Image | Volume:
        """Decode one input, letting large JPEGs decode at reduced scale for this model's input size."""
        if isinstance(source, Image):
            return source
        return read_input(
            source, limits=self.limits, min_size=self.preprocessor.min_decode_size, window=self.preprocessor.window
        )

    def predict(self, source: Source | Volume, settings: Mapping[str, Any] | None = None) -> Prediction:
        """Predict on one image (path, encoded bytes, array or Image); a volume goes to `predict_volume`."""
        item = source if isinstance(source, Volume) else self.read(source)
        if isinstance(item, Volume):
            return self.predict_volume(item, settings)
        return self._predict_images([item], settings, self.network)[0]

    def predict_batch(
        self,
        sources: Iterable[Source],
        settings: Mapping[str, Any] | None = None,
        *,
        batch_size: int = 8,
        workers: int | None = None,
        progress: Progress | None = None,
    ) -> list[Prediction]:
        """Predict on many images, in input order. `progress(n)` is called as each chunk of n finishes."""
        resolve_settings(self.card, settings)  # fail fast on bad settings, before any decoding
        items = list(sources)
        size = self._batch_size(batch_size)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]

        def work(chunk: list[Source]) -> list[Prediction]:
            images = [self._read_image(source) for source in chunk]
            predictions = self._predict_images(images, settings, self.throughput_engine)
            if progress:
                progress(len(chunk))
            return predictions

        with ThreadPoolExecutor(workers or default_threads(), thread_name_prefix="fovea-predict") as pool:
            return [p for chunk_predictions in pool.map(work, chunks) for p in chunk_predictions]

    def predict_slices(self, volume: Volume, settings: Mapping[str, Any] | None = None) -> list[Prediction]:
        """Run a 2-D model on every slice of a volume, batched; one prediction per slice."""
        if self.card.input.dims != 2:
            raise InputError(f"{self.card.name} is a 3-D model; use predict_volume")
        images = self.preprocessor.slice_images(volume)
        size = self._batch_size(8)
        predictions: list[Prediction] = []
        for start in range(0, len(images), size):
            predictions += self._predict_images(images[start : start + size], settings, self.network)
        return predictions

    def predict_volume(
        self, source: Volume | Source | Sequence[Source], settings: Mapping[str, Any] | None = None
    ) -> Prediction:
        """One prediction for a whole volume: a 3-D model on the resized volume (segmentation masks over the
        volume, or one class ranking or set of values for it), or a 2-D segmenter slice by slice.

        `source` is a Volume, a NIfTI file or bytes, or a list of DICOM files (a series).
        """
        volume = self._read_volume(source)
        resolved = resolve_settings(self.card, settings)
        if self.card.input.dims == 3:
            outputs = self.run(self.preprocessor.volume(volume), self.network)
            prediction = tasks.decode_volume(self.card, outputs, volume.size, resolved)
        elif self.card.task is Task.SEGMENTATION:
            prediction = _stack_slices(self.predict_slices(volume, resolved), volume.size, self.card.class_names)
        else:
            raise InputError(
                f"{self.card.name} is a 2-D {self.card.task} model: it predicts on images or on each slice of a volume "
                "(predict_slices), not on a whole volume"
            )
        prediction.source = volume.name
        return prediction

    # -- internals --------------------------------------------------------------------------------

    def run(self, tensor: np.ndarray, engine: OnnxEngine) -> list[np.ndarray]:
        """Run the network on a batch tensor, padding it when the graph has a fixed batch size."""
        fixed = self._fixed_batch
        n = len(tensor)
        if fixed is None or fixed == n:
            result = engine.run({self.input_name: tensor}, self.output_names)
            return [result[name] for name in self.output_names]
        if fixed == 1:
            parts = [self.run(tensor[i : i + 1], engine) for i in range(n)]
            return [np.concatenate(column) for column in zip(*parts, strict=True)]
        raise InputError(f"{self.card.name} takes batches of exactly {fixed} images, got {n}")

    def _predict_images(
        self, images: list[Image], settings: Mapping[str, Any] | None, engine: OnnxEngine
    ) -> list[Prediction]:
        if self.card.input.dims == 3 and images:
            raise InputError(
                f"{images[0].name or 'input'} is a 2-D image, but {self.card.name} is a 3-D model: "
                "it takes volumes (NIfTI, a DICOM series or a multi-frame DICOM file)"
            )
        batch = self.preprocess(images)
        return self.postprocess((self.run(batch.tensor, engine), batch), settings)

    def _read_image(self, source: Source) -> Image:
        item = self.read(source)
        if isinstance(item, Volume):
            raise InputError(f"{item.name or 'input'} is a volume; use predict_volume")
        return item

    def _read_volume(self, source: Volume | Source | Sequence[Source]) -> Volume:
        if isinstance(source, Volume):
            return source
        if isinstance(source, (list, tuple)):
            names = [Path(s).name if isinstance(s, (str, Path)) else f"slice{i}" for i, s in enumerate(source)]
            return read_dicom_series(list(source), names=names, limits=self.limits)
        item = read_input(source, limits=self.limits)
        if not isinstance(item, Volume):
            raise InputError(f"{item.name or 'input'} is a 2-D image, not a volume")
        return item

    def _batch_size(self, wanted: int) -> int:
        fixed = self._fixed_batch
        return wanted if fixed is None or fixed == 1 else fixed

    @property
    def fixed_batch_size(self) -> int | None:
        """The graph's batch size when it is static, else None."""
        return self._fixed_batch

    @cached_property
    def _fixed_batch(self) -> int | None:
        """The graph's batch size when it is static (the graph, not the card, decides)."""
        dim = self.network.input_shape(self.input_name)[0]
        return dim if isinstance(dim, int) and dim > 0 else None

    @cached_property
    def throughput_engine(self) -> OnnxEngine:
        """A second session with one intra-op thread, for one-pipeline-per-core work: several threads may run
        it side by side (dataset inference, a session's batches under load)."""
        if self.network.threads == 1:
            return self.network
        return OnnxEngine(self.path, providers=self._providers, threads=1)

    def _check_card(self, engine: OnnxEngine) -> None:
        name = self.card.input.name
        if name is not None and name not in engine.inputs:
            raise CardError(f"card input {name!r} is not an input of {self.path.name} ({engine.input_names})")
        missing = [o for o in self.card.decoder.outputs or () if o not in engine.outputs]
        if missing:
            raise CardError(f"card outputs {missing} are not outputs of {self.path.name} ({engine.outputs})")


def _stack_slices(slices: list[Prediction], size: tuple[int, int, int], class_names: Sequence[str]) -> Prediction:
    """Per-slice segmentation predictions as one volume prediction with (K, D, H, W) masks."""
    labels = sorted({int(label) for p in slices for label in p.labels})
    masks = np.zeros((len(labels), *size), bool)
    sums = np.zeros(len(labels))
    counts = np.zeros(len(labels))
    for z, p in enumerate(slices):
        for label, score, mask in zip(p.labels, p.scores, p.masks if p.masks is not None else [], strict=True):
            k = labels.index(int(label))
            masks[k, z] = mask
            area = mask.sum()
            sums[k] += score * area
            counts[k] += area
    return Prediction(
        task=Task.SEGMENTATION,
        size=size,
        class_names=class_names,
        labels=np.array(labels, np.int64),
        scores=(sums / np.maximum(counts, 1)).astype(np.float32),
        masks=masks,
    )


def load(path: str | Path, card: ModelCard | str | Path | None = None, **options: Any) -> OnnxModel:
    """Load a weights file. `card` overrides the embedded card (a ModelCard or a side-car file path)."""
    if isinstance(card, (str, Path)):
        card = ModelCard.from_file(card)
    if not Path(path).is_file():
        raise InputError(f"model file not found: {path}")
    return OnnxModel(path, card, **options)
