"""One split of a DeepHealth dataset as network inputs and targets, through an augmentation pipeline.

Images are found inside the dataset's folder when they are read (`dataset_file`), read with the inference core's own
reader and converted to the dataset's colour type as serving does (RGB to GRAY with OpenCV), so a trained model
sees at serving time what it saw in training. After the pipeline come the implicit steps of the dataset format
(§2.6): resize to Input width x Input height if the pipeline did not (linear for images, nearest for masks),
float32 without rescaling, channels first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from fovea.core.io import read_input
from fovea.core.predictions import Task
from fovea.datasets import DatasetSpec
from fovea.datasets.files import dataset_file

Pipeline = Callable[..., dict[str, Any]]


@dataclass
class SplitData(torch.utils.data.Dataset):
    """Samples `ids` of `spec`, located under `root`; items are (C x H x W float32 tensor, target tensor)."""

    spec: DatasetSpec
    root: Path
    ids: list[int]
    task: Task
    size: tuple[int, int]  # (height, width)
    gray: bool
    pipeline: Pipeline

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
        first = location[0] if isinstance(location, list) else location
        pixels = read_input(dataset_file(self.root, first, where)).pixels
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)[:, :, None] if self.gray else pixels

    def _mask(self, location: str, where: str) -> np.ndarray:
        mask = np.asarray(read_input(dataset_file(self.root, location, where)).pixels[:, :, 0])
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
