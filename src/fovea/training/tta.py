"""Test-time augmentation: an inference process's `Test augmentations` applied to each image, outputs averaged.

The string is the ECVL grammar of `fovea.training.augmentations`, applied as training applies its test pipeline
(training/data.py): to the decoded image in the model's colour (GRAY models see one channel). Then:

- when the pipeline maps values (AugToFloat32, AugNormalize, AugDivBy255, AugScaleTo...), its float output IS the
  network input, as in training: stretched to the input size if the pipeline did not resize it, and the card's own
  value map is not applied again;
- when it leaves the pixels as 8-bit (only geometry or colour jitter), the card's preprocessing follows as usual.

A pipeline with random steps runs `passes` times per image (seeded, so a process is reproducible) and the raw network
outputs are averaged before decoding. Masks and boxes must map back onto the original image, so segmentation and
detection take only pipelines that keep the whole frame and are deterministic (resizes and value maps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fovea.core.colour import from_rgb, to_rgb
from fovea.core.geometry import Geometry
from fovea.core.io import Image, read_input
from fovea.core.onnx_model import Batch, OnnxModel
from fovea.core.predictions import Prediction, Task
from fovea.errors import InputError
from fovea.training.augmentations import Augmentation, Container, Node, build_pipeline, parse_augmentations

PASSES = 8  # draws of a random pipeline per image
SEED = 0
# Steps that draw nothing at random; of these, the first two keep the whole frame (a stretch maps back exactly).
FRAME_KEEPING = {"AugResizeDim", "AugResizeScale", "AugToFloat32", "AugDivBy255", "AugNormalize", "AugScaleTo",
                 "AugScaleFromTo"}  # fmt: skip
DETERMINISTIC = FRAME_KEEPING | {"AugCenterCrop"}
FLIPS = {"AugMirror", "AugFlip"}


def _steps(node: Node | None) -> list[Node]:
    if node is None:
        return []
    if isinstance(node, Container):
        return [node, *(step for child in node.children for step in _steps(child))]
    return [node]


def _random(step: Node) -> bool:
    if isinstance(step, Container):
        return step.kind != "SequentialAugmentationContainer" and len(step.children) > 0
    if step.name in FLIPS:  # a flip with p 0 or 1 always does the same
        return 0 < step.params["p"] < 1
    return step.name not in DETERMINISTIC


def is_random(node: Node | None) -> bool:
    return any(_random(step) for step in _steps(node))


def check_for_task(text: str | None, task: Task) -> Node | None:
    """Parse `text`; for segmentation and detection, refuse pipelines whose results could not map back (ValueError)."""
    node = parse_augmentations(text)
    if task in (Task.SEGMENTATION, Task.DETECTION):
        moving = [s.name for s in _steps(node) if isinstance(s, Augmentation) and s.name not in FRAME_KEEPING]
        if moving or is_random(node):
            named = f" ({', '.join(sorted(set(moving)))})" if moving else ""
            raise ValueError(
                f"{task} results must map back onto the original image, so test augmentations may only resize and "
                f"map values, without random steps{named}"
            )
    return node


class TestTimeAugmentation:
    """Predict with `model` through the pipeline `text` (see the module docstring)."""

    def __init__(self, model: OnnxModel, text: str, *, passes: int = PASSES, seed: int = SEED) -> None:
        node = check_for_task(text, model.task)
        if node is None:
            raise InputError("no test augmentations to apply")
        self.model = model
        self.pipeline = build_pipeline(text)
        self.passes = passes if is_random(node) else 1
        self.rng = np.random.default_rng(seed)

    def _draw(self, pixels: np.ndarray) -> np.ndarray:
        # albumentations draws from Python's and NumPy's global generators: seeding them here, from this
        # process's own generator, makes every draw reproducible without touching other threads' state.
        seed = int(self.rng.integers(2**31))
        self.pipeline.set_random_seed(seed)
        return np.asarray(self.pipeline(image=pixels)["image"])

    def _network_input(self, image: Image, out: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """One pass's pipeline output as an (HxWxC, layout-free) network slot and its geometry to the original."""
        spec = self.model.card.input
        if out.dtype == np.uint8:  # pixels still: the card's own preprocessing follows
            augmented = Image(to_rgb(out, spec.color))
            tensor, [geometry] = self.model.preprocessor([augmented])
            h, w = augmented.pixels.shape[:2]
            geometry = geometry.rescaled(image.original_size[0] / h, image.original_size[1] / w, image.original_size)
            return tensor[0], geometry
        height, width = spec.size[-2:]
        if out.shape[:2] != (height, width):
            out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
        if out.ndim == 2:
            out = out[:, :, None]
        if out.shape[2] != spec.channels:
            raise InputError(f"the test augmentations give {out.shape[2]} channels, the model takes {spec.channels}")
        oh, ow = image.original_size
        geometry = Geometry((oh, ow), (height, width), (height / oh, width / ow), (0.0, 0.0))
        values = out.astype(spec.dtype)
        return (values if spec.layout == "NHWC" else values.transpose(2, 0, 1)), geometry

    def predict_batch(
        self, sources: Sequence[str | Path | Image], settings: Mapping[str, Any] | None = None, *, batch_size: int = 16
    ) -> list[Prediction]:
        """Predictions in input order, as `OnnxModel.predict_batch` gives them, through the pipeline."""
        model = self.model
        predictions: list[Prediction] = []
        for start in range(0, len(sources), batch_size):
            images = [self._image(source) for source in sources[start : start + batch_size]]
            summed: list[np.ndarray] = []
            for _ in range(self.passes):
                slots, geometries = [], []
                for image in images:
                    drawn = self._draw(from_rgb(image.pixels, model.card.input.color))
                    slot, geometry = self._network_input(image, drawn)
                    slots.append(slot)
                    geometries.append(geometry)
                outputs = model.run(np.stack(slots), model.network)
                summed = outputs if not summed else [a + b for a, b in zip(summed, outputs, strict=True)]
            averaged = [array / self.passes for array in summed]
            batch = Batch(np.empty(0), geometries, [image.name for image in images])
            predictions += model.postprocess((averaged, batch), settings)
        return predictions

    def _image(self, source: str | Path | Image) -> Image:
        if isinstance(source, Image):
            return source
        item = read_input(source, limits=self.model.limits, window=self.model.preprocessor.window)
        if not isinstance(item, Image):
            raise InputError(f"{Path(source).name} is a volume: test augmentations apply to 2-D images")
        return item

    # A volume in the dataset goes to the model itself (the pipeline is 2-D).
    def read(self, source: Any) -> Any:
        return self.model.read(source)

    def predict_volume(self, source: Any, settings: Mapping[str, Any] | None = None) -> Prediction:
        return self.model.predict_volume(source, settings)
