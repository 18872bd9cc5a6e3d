"""One training from resolved settings: data, network, loop, and an ONNX export with its card per checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from fovea.core.card import ModelCard
from fovea.core.export import to_onnx
from fovea.core.predictions import Task
from fovea.datasets import DatasetSpec, load_dataset_yaml
from fovea.datasets.deephealth import served_color
from fovea.paths import atomic_path
from fovea.training.augmentations import build_pipeline
from fovea.training.data import Pipeline, SplitData, num_outputs
from fovea.training.networks import load_network, name_final_layer
from fovea.training.trainer import EpochResult, Hyperparameters, Trainer


@dataclass
class TrainingJob:
    task: str
    settings: dict[str, Any]  # resolved hyperparameters by canonical name, plus `fine_tuning` and `cut_at`
    parent_file: Path
    parent_name: str
    yaml_path: Path
    dataset_name: str
    gray: bool  # the colour type when `ctype` is empty (GRAY, else RGB)
    out: Path
    process_id: str = ""
    ctype: str = ""  # the dataset's colour type for images (§1.5), and for masks (`ctype_gt`, default GRAY)
    ctype_gt: str | None = None

    def run(self, *, report: Callable[[str], None], check_stop: Callable[[], None]) -> list[EpochResult]:
        torch.set_flush_denormal(True)  # denormals slow CPU training several-fold as weights decay towards zero
        task = Task(self.task)
        spec = load_dataset_yaml(self.yaml_path, segmentation=task is Task.SEGMENTATION)
        s = self.settings
        size = (int(s["Input height"]), int(s["Input width"]))
        kinds = ("Training", "Validation", "Test")
        pipelines = {kind: build_pipeline(s.get(f"{kind} augmentations")) for kind in kinds}

        ctype = self.ctype or ("GRAY" if self.gray else "RGB")

        def split(name: str, pipeline: Pipeline) -> SplitData:
            ids = spec.ids(name)
            return SplitData(spec, self.yaml_path.parent, ids, task, size, self.gray, pipeline, ctype, self.ctype_gt)

        training, validation = split("training", pipelines["Training"]), split("validation", pipelines["Validation"])
        probe = split("training", pipelines["Test"])
        sample = probe[0][0].unsqueeze(0).numpy()
        first = spec.samples[probe.ids[0]].location
        planes = len(first) if isinstance(first, list) else 1
        color = served_color(ctype, planes, sample.shape[1])  # before any training: the card must describe it
        cut_at = s.get("cut_at") if s.get("fine_tuning") == "new head" else None
        network = load_network(self.parent_file, task, num_outputs(spec, task), layer_to_remove=cut_at, sample=sample)
        card = self.card(spec, task, pipelines["Test"], sample.shape[1], size, color)
        hp = Hyperparameters(
            epochs=int(s["Epochs"]),
            batch_size=int(s["Batch size"]),
            learning_rate=float(s["Learning rate"]),
            loss=s["Loss function"],
            metric=s["Metric"],
        )

        def checkpoint(net: nn.Module, result: EpochResult) -> None:
            to_onnx(net, sample, card, self.out, output_names=["logits"])
            if cut_at is not None:  # the new head's node is `final_layer`, so these weights can be cut again
                model = onnx.load(str(self.out))
                name_final_layer(model)
                with atomic_path(self.out) as tmp:
                    onnx.save(model, str(tmp))

        trainer = Trainer(network, task, hp, report=report, check_stop=check_stop, checkpoint=checkpoint)
        return trainer.fit(training, validation if len(validation) else None)

    def card(
        self, spec: DatasetSpec, task: Task, test: Pipeline, channels: int, size: tuple[int, int], color: str = ""
    ) -> ModelCard:
        """The card that makes serving compute the tensors training's test pipeline computes.

        Serving maps each pixel value v to (v * scale - mean) / std after a stretch resize. The test pipeline's
        per-pixel value map is measured on constant images (resizing a constant image keeps it constant), and
        any affine map a*v + b is written exactly as scale 1/255, std = scale / a, mean = -b * std.
        """
        probes = [self._constant(test, value, channels, size) for value in (0.0, 255.0)]
        slope = (probes[1] - probes[0]) / 255.0
        if np.any(np.abs(slope) < 1e-12):
            raise ValueError("the Test augmentations map every pixel to the same value")
        scale = 1 / 255
        std = scale / slope
        mean = -probes[0] * std
        if task is Task.SEGMENTATION and len(spec.classes) <= 1:
            classes, decoder = [spec.classes[0] if spec.classes else "foreground"], "sigmoid_threshold"
        elif task is Task.SEGMENTATION:
            classes, decoder = spec.classes, "argmax"
        else:
            decoder = {Task.CLASSIFICATION: "softmax", Task.MULTILABEL: "sigmoid", Task.REGRESSION: "identity"}[task]
            classes = [] if task is Task.REGRESSION else spec.classes
        used = {k: v for k, v in self.settings.items() if k not in ("fine_tuning", "cut_at")}
        return ModelCard(
            name=f"{self.parent_name} fine-tuned on {self.dataset_name}",
            task=task,
            classes=classes,
            regressions=spec.features if task is Task.REGRESSION else (),
            input={
                "color": color or ("GRAY" if channels == 1 else "RGB"),
                "size": size,
                "resize": "stretch",
                "scale": scale,
                "mean": tuple(float(m) for m in mean),
                "std": tuple(float(d) for d in std),
            },
            decoder={"kind": decoder},
            provenance={
                "architecture": f"{self.parent_name} ({self.settings.get('fine_tuning')})",
                "trained_on": self.dataset_name,
                "parent_weights": self.parent_name,
                "notes": f"Fovea training {self.process_id}; settings: {json.dumps(used)}",
            },
        )

    @staticmethod
    def _constant(pipeline: Pipeline, value: float, channels: int, size: tuple[int, int]) -> np.ndarray:
        image = np.full((*size, channels), value, np.uint8)
        out = np.asarray(pipeline(image=image)["image"], np.float64)
        return out.reshape(-1, out.shape[-1] if out.ndim == 3 else 1).mean(axis=0)
