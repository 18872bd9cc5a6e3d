"""The Digits demo: scikit-learn's 1797 8x8 digits as a DeepHealth dataset, and a small CNN trained on it.

The network is trained on tensors made by Fovea's own preprocessing from the written PNGs, so serving
sees exactly what training saw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fovea.core.card import ModelCard
from fovea.datasets import DatasetSpec, Sample, load_dataset_yaml, write_dataset_yaml

SEED = 0
CLASSES = [str(d) for d in range(10)]


def card() -> ModelCard:
    return ModelCard(
        name="digits-lenet",
        task="classification",
        classes=CLASSES,
        input={"color": "GRAY", "size": (16, 16), "resize": "stretch", "mean": (0.5,), "std": (0.5,)},
        decoder={"kind": "softmax"},
        settings={"top_k": 3},
        provenance={"architecture": "lenet", "trained_on": "Digits (scikit-learn), training split"},
    )


def build_dataset(yaml_path: Path) -> None:
    """PNG per digit (0..16 scaled to 0..255) and a YAML with a seeded 70/15/15 split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = yaml_path.parent
    (root / "images").mkdir(parents=True, exist_ok=True)
    samples = []
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        location = f"images/digit_{i:04d}.png"
        Image.fromarray((pixels * (255 / 16)).round().astype(np.uint8)).save(root / location)
        samples.append(Sample(location=location, label=int(label)))
    order = np.random.default_rng(SEED).permutation(len(samples)).tolist()
    n_train, n_val = int(0.7 * len(order)), int(0.15 * len(order))
    split = {
        "training": sorted(order[:n_train]),
        "validation": sorted(order[n_train : n_train + n_val]),
        "test": sorted(order[n_train + n_val :]),
    }
    spec = DatasetSpec(
        name="Digits",
        description="scikit-learn's handwritten digits (8x8, 16 grey levels), one PNG per image",
        classes=CLASSES,
        samples=samples,
        split=split,
    )
    write_dataset_yaml(yaml_path, spec)


def load_split(yaml_path: Path, split: str) -> tuple[list[Path], np.ndarray]:
    spec = load_dataset_yaml(yaml_path)
    ids = spec.ids(split)
    return [yaml_path.parent / str(spec.samples[i].location) for i in ids], np.array(
        [spec.samples[i].label for i in ids], np.int64
    )


def _tensors(paths: list[Path], model_card: ModelCard) -> np.ndarray:
    from fovea.core.io import read_input
    from fovea.core.preprocess import Preprocessor

    batch, _ = Preprocessor(model_card.input)([read_input(p) for p in paths])
    return batch


def network():  # -> torch.nn.Module
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(64, 10),
    )


def build_model(path: Path, epochs: int = 30) -> float:
    """Train on the training split (best validation epoch kept), export to ONNX; returns test accuracy."""
    import torch

    from fovea.core.export import to_onnx

    yaml_path = path.parent / "digits" / "digits.yml"
    if not yaml_path.exists():
        build_dataset(yaml_path)
    model_card = card()
    data = {s: load_split(yaml_path, s) for s in ("training", "validation", "test")}
    x = {s: torch.from_numpy(_tensors(paths, model_card)) for s, (paths, _) in data.items()}
    y = {s: torch.from_numpy(labels) for s, (_, labels) in data.items()}

    torch.manual_seed(SEED)
    net = network()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    best, best_state = -1.0, None
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x["training"]), generator=generator).split(64):
            optimizer.zero_grad()
            loss_fn(net(x["training"][idx]), y["training"][idx]).backward()
            optimizer.step()
        accuracy = _accuracy(net, x["validation"], y["validation"])
        if accuracy > best:
            best, best_state = accuracy, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    to_onnx(net.eval(), x["test"][:1].numpy(), model_card, path, output_names=["logits"])
    return _accuracy(net, x["test"], y["test"])


def _accuracy(net, x, y) -> float:
    import torch

    net.eval()
    with torch.inference_mode():
        return float((net(x).argmax(1) == y).float().mean())
