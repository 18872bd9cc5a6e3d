"""One split of a DeepHealth dataset as network inputs and targets, through an augmentation pipeline.

Images are found inside the dataset's folder when they are read (`dataset_file`), read with the inference core's own
reader (RGB) and converted to the dataset's colour type `ctype` (dataset format §1.5) by `fovea.core.colour`, as
serving converts to a card's colour, so a trained model sees at serving time what it saw in training. The
planes of a multi-plane sample are converted one by one and stacked in their listed order along the channel axis
(two GRAY planes: 2 channels). Masks are read as `ctype_gt` and must come out as one channel of class indexes.
After the pipeline come the implicit steps of the dataset format (§2.6): resize to Input width x Input height if
the pipeline did not (linear for images, nearest for masks), float32 without rescaling, channels first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageOps

from fovea.core.colour import MODEL_COLOURS, from_rgb
from fovea.core.io import read_input
from fovea.core.predictions import Task
from fovea.datasets import DatasetSpec
from fovea.datasets.files import dataset_file
from fovea.errors import InputError

Pipeline = Callable[..., dict[str, Any]]

CTYPES = (*MODEL_COLOURS, "RGBA", "NONE")


def _pil_bands(path: Path) -> tuple[bool, bool]:
    """(colour, alpha) of a raster file as Pillow decodes it; (True, False) for what Pillow does not open."""
    try:
        with PILImage.open(path) as pil:
            bands = set(pil.getbands())
            alpha = "A" in bands or (pil.mode == "P" and "transparency" in pil.info)
            colour = pil.mode == "P" or not bands <= {"L", "I", "F", "1", "A", "I;16"}
            return colour, alpha
    except (OSError, ValueError):  # DICOM and others the core reader handles
        return True, False


def _alpha(path: Path) -> np.ndarray:
    with PILImage.open(path) as pil:
        return np.asarray(ImageOps.exif_transpose(pil).convert("RGBA"))[:, :, 3:]


def read_plane(path: Path, ctype: str) -> np.ndarray:
    """One image file as H x W x C uint8 in colour type `ctype` (dataset format §1.5)."""
    item = read_input(path)
    pixels = getattr(item, "pixels", None)
    if pixels is None:
        raise InputError(f"{path.name} is a volume; 2-D training takes images (a volume's slices can be planes)")
    if ctype == "NONE":  # the decoded channels: 1 for a grey file, 4 with an alpha channel, else 3
        colour, alpha = _pil_bands(path)
        ctype = ("RGBA" if alpha else "RGB") if colour else "GRAY"
    if ctype == "RGBA":
        return np.concatenate([pixels, _alpha(path)], axis=2)
    if ctype not in MODEL_COLOURS:
        raise InputError(f"colour type {ctype!r} is not one of {', '.join(CTYPES)}")
    return from_rgb(pixels, ctype)


def read_sample(root: Path, location: str | list[str], ctype: str, where: str) -> np.ndarray:
    """A sample's pixels: its one file, or its planes converted one by one and stacked as channels in order."""
    planes = location if isinstance(location, list) else [location]
    arrays = [read_plane(dataset_file(root, plane, where), ctype) for plane in planes]
    for plane, array in zip(planes[1:], arrays[1:], strict=True):
        if array.shape[:2] != arrays[0].shape[:2]:
            (h, w), (h0, w0) = array.shape[:2], arrays[0].shape[:2]
            raise InputError(f"{where}: plane {plane!r} is {w}x{h} but {planes[0]!r} is {w0}x{h0}")
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=2)


def read_mask(path: Path, ctype_gt: str | None, where: str) -> np.ndarray:
    """A ground-truth mask as H x W pixel values, read as `ctype_gt` (default GRAY); it must give one channel."""
    mask = read_plane(path, ctype_gt or "GRAY")
    if mask.shape[2] != 1:
        raise InputError(
            f"{where}: ctype_gt {ctype_gt} reads the mask as {mask.shape[2]} channels; masks are class indexes in one "
            "channel (use ctype_gt GRAY, or NONE with single-channel mask files)"
        )
    return mask[:, :, 0]


@dataclass
class SplitData(torch.utils.data.Dataset):
    """Samples `ids` of `spec`, located under `root`; items are (C x H x W float32 tensor, target tensor)."""

    spec: DatasetSpec
    root: Path
    ids: list[int]
    task: Task
    size: tuple[int, int]  # (height, width)
    gray: bool  # the colour type when `ctype` is empty (GRAY, else RGB)
    pipeline: Pipeline
    ctype: str = ""
    ctype_gt: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_id = self.ids[index]
        sample = self.spec.samples[image_id]
        image = self._image(sample.location, f"images[{image_id}]")
        mask = self._mask(str(sample.label), f"images[{image_id}].label") if self.task is Task.SEGMENTATION else None
        out = self.pipeline(image=image, mask=mask) if mask is not None else self.pipeline(image=image)
        image, mask = out["image"], out.get("mask")
        height, width = self.size
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        if image.ndim == 2:
            image = image[:, :, None]
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), np.float32))
        if mask is not None:
            if mask.shape[:2] != (height, width):
                mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
            return x, torch.from_numpy(np.ascontiguousarray(mask, np.int64))
        return x, self._target(sample)

    def _image(self, location: str | list[str], where: str) -> np.ndarray:
        return read_sample(self.root, location, self.ctype or ("GRAY" if self.gray else "RGB"), where)

    def _mask(self, location: str, where: str) -> np.ndarray:
        mask = read_mask(dataset_file(self.root, location, where), self.ctype_gt, where)
        binary = len(self.spec.classes) <= 1
        return (mask > 0).astype(np.uint8) if binary else mask.astype(np.uint8)

    def _target(self, sample: Any) -> torch.Tensor:
        if self.task is Task.REGRESSION:
            return torch.tensor([float(sample.values[f]) for f in self.spec.features], dtype=torch.float32)
        if self.task is Task.MULTILABEL:
            hot = torch.zeros(len(self.spec.classes))
            labels = sample.label if isinstance(sample.label, list) else [sample.label]
            hot[labels] = 1.0
            return hot
        label = sample.label[0] if isinstance(sample.label, list) else sample.label
        return torch.tensor(int(label))


def num_outputs(spec: DatasetSpec, task: Task) -> int:
    """C of the fine-tuning rules: the dataset's class count (1 for binary segmentation), features for regression."""
    if task is Task.REGRESSION:
        return len(spec.features)
    if task is Task.SEGMENTATION:
        return 1 if len(spec.classes) <= 1 else len(spec.classes)
    return len(spec.classes)
