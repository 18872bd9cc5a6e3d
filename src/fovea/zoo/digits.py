"""The Digits demo: scikit-learn's 1797 8x8 digits as a DeepHealth dataset, and a small CNN trained on it.

The network reads the 8x8 PNGs at their own size (card: GRAY, 8x8, stretch, x/255, mean 0.5, std 0.5), so the
generic preprocessing of a served model computes exactly the tensors training used, with no resampling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from fovea.core.card import ModelCard
from fovea.datasets import Sample, load_dataset_yaml, write_dataset_yaml

if TYPE_CHECKING:
    import torch

SEED = 0
CLASSES = [str(d) for d in range(10)]
SIZE = (8, 8)
MEAN, STD = 0.5, 0.5
SPLIT_SHARES = (0.70, 0.15)  # training, validation; the rest is test


def card() -> ModelCard:
    return ModelCard(
        name="digits-lenet",
        task="classification",
        classes=CLASSES,
        input={"color": "GRAY", "size": SIZE, "resize": "stretch", "scale": 1 / 255, "mean": (MEAN,), "std": (STD,)},
        decoder={"kind": "softmax"},
        settings={"top_k": 3},
        provenance={
            "architecture": "lenet (2 conv blocks, 2 dense layers)",
            "trained_on": "Digits (scikit-learn load_digits), training split of digits.yml",
            "license": "BSD-3-Clause (scikit-learn's data)",
            "notes": "trained by `fovea zoo build`; best validation epoch kept",
        },
    )


def build_dataset(yaml_path: Path) -> str:
    """One PNG per digit (0..16 scaled to 0..255) and a YAML with a seeded 70/15/15 split; the YAML comes last."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = yaml_path.parent
    (root / "images").mkdir(parents=True, exist_ok=True)
    samples = []
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        location = f"images/digit_{i:04d}.png"
        Image.fromarray((pixels * (255 / 16)).round().astype(np.uint8), mode="L").save(root / location)
        samples.append(Sample(location=location, label=int(label)))
    order = np.random.default_rng(SEED).permutation(len(samples))
    n_train, n_val = (round(share * len(order)) for share in SPLIT_SHARES)
    split = {
        "training": sorted(order[:n_train].tolist()),
        "validation": sorted(order[n_train : n_train + n_val].tolist()),
        "test": sorted(order[n_train + n_val :].tolist()),
    }
    description = "scikit-learn's handwritten digits (8x8, 16 grey levels scaled to 0..255), one PNG per image"
    write_dataset_yaml(yaml_path, "Digits", CLASSES, samples, split, description)
    return f"{len(samples)} images, split {', '.join(f'{k} {len(v)}' for k, v in split.items())}"


def load_split(yaml_path: Path, split: str) -> tuple[list[Path], np.ndarray]:
    """The image paths and labels of one split of the Digits YAML."""
    spec = load_dataset_yaml(yaml_path)
    ids = spec.ids(split)
    paths = [yaml_path.parent / str(spec.samples[i].location) for i in ids]
    return paths, np.array([spec.samples[i].label for i in ids], np.int64)


def read_tensors(paths: list[Path]) -> np.ndarray:
    """(N, 1, 8, 8) float32 network inputs from the PNGs, as the card's input spec prescribes."""
    pixels = np.stack([np.asarray(Image.open(p).convert("L"), np.float32) for p in paths])
    return ((pixels / 255 - MEAN) / STD)[:, None]


def network() -> torch.nn.Module:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4x4
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 2x2
        nn.Flatten(),
        nn.Linear(64 * 2 * 2, 64),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(64, len(CLASSES)),
    )


@dataclass(frozen=True, slots=True)
class TrainingResult:
    test_accuracy: float
    validation_accuracy: float
    best_epoch: int
    seconds: float


def train(yaml_path: Path, epochs: int = 20) -> tuple[torch.nn.Module, TrainingResult]:
    """Train on the training split only, keep the best validation epoch, measure on the test split."""
    import torch

    data = {s: load_split(yaml_path, s) for s in ("training", "validation", "test")}
    x = {s: torch.from_numpy(read_tensors(paths)) for s, (paths, _) in data.items()}
    y = {s: torch.from_numpy(labels) for s, (_, labels) in data.items()}
    start = time.perf_counter()
    torch.manual_seed(SEED)
    net = network()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(SEED)
    best, best_epoch, best_state = -1.0, -1, net.state_dict()
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(len(x["training"]), generator=generator).split(32):
            optimizer.zero_grad()
            loss_fn(net(x["training"][idx]), y["training"][idx]).backward()
            optimizer.step()
        schedule.step()
        accuracy = _accuracy(net, x["validation"], y["validation"])
        if accuracy > best:
            best, best_epoch = accuracy, epoch
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    net.eval()
    seconds = time.perf_counter() - start
    return net, TrainingResult(_accuracy(net, x["test"], y["test"]), best, best_epoch, seconds)


def build_model(path: Path) -> str:
    """Train (building the dataset first if needed) and export to ONNX with a parity check."""
    from fovea.core.export import to_onnx

    yaml_path = path.parent / "digits" / "digits.yml"
    if not yaml_path.exists():
        build_dataset(yaml_path)
    net, result = train(yaml_path)
    test_paths, _ = load_split(yaml_path, "test")
    to_onnx(net, read_tensors(test_paths[:1]), card(), path, output_names=["logits"])
    return (
        f"trained in {result.seconds:.1f} s; test accuracy {result.test_accuracy:.4f} "
        f"(validation {result.validation_accuracy:.4f}, epoch {result.best_epoch + 1})"
    )


def build_random(path: Path) -> str:
    """The same network with seeded random weights: the catalog's starting point for training from scratch."""
    import torch

    from fovea.core.export import sample_input, to_onnx

    torch.manual_seed(SEED)
    placeholder = card().model_copy(update={"name": "lenet-random", "provenance": {"notes": "random initialisation"}})
    to_onnx(network().eval(), sample_input(placeholder), placeholder, path, output_names=["logits"])
    return f"{path.stat().st_size / 1e3:.0f} kB, random weights"


def _accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    import torch

    net.eval()
    with torch.inference_mode():
        return float((net(x).argmax(1) == y).float().mean())
