"""What the zoo holds, where, and how each piece is built."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fovea.paths import fovea_home

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ZooEntry:
    name: str
    kind: Literal["model", "dataset", "samples"]
    task: str
    path: Path  # the ONNX file, the dataset YAML, or the samples folder
    description: str
    num_classes: int | None = None

    @property
    def built(self) -> bool:
        return self.path.exists()

    @property
    def size_bytes(self) -> int:
        """Bytes on disk: the model file, or the whole dataset / samples folder; 0 when not built."""
        if not self.built:
            return 0
        where = self.path.parent if self.kind == "dataset" else self.path
        if where.is_file():
            return where.stat().st_size
        return sum(p.stat().st_size for p in where.rglob("*") if p.is_file())


def zoo_dir(out: Path | str | None = None) -> Path:
    """The zoo folder: `out`, else $FOVEA_HOME/zoo."""
    return Path(out).expanduser() if out else fovea_home() / "zoo"


def _entries(root: Path) -> list[ZooEntry]:
    return [
        ZooEntry(
            "efficientnet-lite0-imagenet",
            "model",
            "classification",
            root / "efficientnet-lite0-imagenet.onnx",
            "EfficientNet-Lite0 trained on ImageNet-1k",
            1000,
        ),
        ZooEntry(
            "digits-lenet",
            "model",
            "classification",
            root / "digits-lenet.onnx",
            "a small CNN trained on the Digits training split",
            10,
        ),
        ZooEntry(
            "lenet-random",
            "model",
            "classification",
            root / "lenet-random.onnx",
            "the Digits CNN with random weights, to train from scratch",
            10,
        ),
        ZooEntry(
            "unet-random",
            "model",
            "segmentation",
            root / "unet-random.onnx",
            "a small U-Net (GRAY 64x64, one mask channel) with random weights",
            1,
        ),
        ZooEntry(
            "retinaface-mobilenet-widerface",
            "model",
            "detection",
            root / "retinaface-mobilenet-widerface.onnx",
            "RetinaFace (MobileNet-0.25) face detector trained on WIDER FACE",
            1,
        ),
        ZooEntry(
            "ppocrv6-det-text",
            "model",
            "segmentation",
            root / "ppocrv6-det-text.onnx",
            "PP-OCRv6's DBNet text detector as a one-class (text) segmenter",
            1,
        ),
        ZooEntry(
            "digits",
            "dataset",
            "classification",
            root / "digits" / "digits.yml",
            "scikit-learn's 1797 handwritten digits as 8x8 PNGs, split 70/15/15",
            10,
        ),
        ZooEntry("samples", "samples", "-", root / "samples", "photos from scikit-image (chelsea, coffee, ...)"),
    ]


def list_zoo(out: Path | str | None = None) -> list[ZooEntry]:
    """Every zoo entry with where it lives (or would live) under `out` and whether it is built."""
    return _entries(zoo_dir(out))


def build_zoo(
    out: Path | str | None = None, *, force: bool = False, progress: Progress | None = None
) -> list[ZooEntry]:
    """Build whatever is missing (everything with `force`) from installed packages; quick when all is there.

    Each piece appears complete or not at all (files are renamed into place), so an interrupted build
    resumes where it stopped.
    """
    from fovea.zoo import digits, efficientnet, retinaface, samples, textdet, unet

    say = progress or (lambda message: None)
    root = zoo_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    builders: dict[str, Callable[[Path], str]] = {
        "samples": samples.build,
        "efficientnet-lite0-imagenet": efficientnet.build,
        "digits": digits.build_dataset,
        "digits-lenet": digits.build_model,  # after "digits": it trains on that dataset's training split
        "lenet-random": digits.build_random,
        "unet-random": unet.build,
        "retinaface-mobilenet-widerface": retinaface.build,
        "ppocrv6-det-text": textdet.build,
    }
    entries = {entry.name: entry for entry in _entries(root)}
    for name, build in builders.items():
        entry = entries[name]
        if entry.built and not force:
            continue
        say(f"building {name} ...")
        start = time.perf_counter()
        detail = build(entry.path)
        say(f"built {name} in {time.perf_counter() - start:.1f} s: {detail}")
    return list(entries.values())
