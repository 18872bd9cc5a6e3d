"""What the zoo holds, where, and how each piece is built."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fovea.paths import fovea_home

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ZooEntry:
    name: str
    kind: str  # "model", "dataset" or "samples"
    task: str
    path: Path
    description: str

    @property
    def built(self) -> bool:
        return self.path.exists()


def zoo_dir(out: Path | None = None) -> Path:
    return Path(out).expanduser() if out else fovea_home() / "zoo"


def _entries(root: Path) -> list[ZooEntry]:
    return [
        ZooEntry(
            "efficientnet-lite0-imagenet",
            "model",
            "classification",
            root / "efficientnet-lite0-imagenet.onnx",
            "EfficientNet-Lite0 trained on ImageNet-1k (1000 classes)",
        ),
        ZooEntry(
            "digits-lenet",
            "model",
            "classification",
            root / "digits-lenet.onnx",
            "a small CNN for the Digits data",
        ),
        ZooEntry(
            "digits",
            "dataset",
            "classification",
            root / "digits" / "digits.yml",
            "scikit-learn's 1797 digits",
        ),
        ZooEntry("samples", "samples", "-", root / "samples", "photos from scikit-image (chelsea, coffee, ...)"),
    ]


def list_zoo(out: Path | None = None) -> list[ZooEntry]:
    return _entries(zoo_dir(out))


def build_zoo(out: Path | None = None, *, force: bool = False, progress: Progress | None = None) -> list[ZooEntry]:
    """Build whatever is missing (or everything with `force`); idempotent and quick when all is there."""
    from fovea.zoo import digits, efficientnet, samples

    say = progress or (lambda message: None)
    root = zoo_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    builders = {
        "efficientnet-lite0-imagenet": efficientnet.build,
        "digits": digits.build_dataset,
        "digits-lenet": digits.build_model,
        "samples": samples.build,
    }
    entries = {entry.name: entry for entry in _entries(root)}
    for name in ("samples", "efficientnet-lite0-imagenet", "digits", "digits-lenet"):
        entry = entries[name]
        if entry.built and not force:
            continue
        say(f"building {name} ...")
        start = time.perf_counter()
        builders[name](entry.path)
        say(f"built {name} in {time.perf_counter() - start:.1f} s")
    return list(entries.values())
