"""A small U-Net with random weights: the segmentation starting point of the catalog (fine-tuned by `train`).

Two down steps and two up steps with skip connections, 1 input channel (GRAY), 64x64 inputs, one output
channel (binary masks). Its last node, a 1x1 convolution named by the card as `layer_to_remove`, is what a
fine-tuning for more classes replaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fovea.core.card import ModelCard

if TYPE_CHECKING:
    import torch

SEED = 0
SIZE = (64, 64)


def card() -> ModelCard:
    return ModelCard(
        name="unet-random",
        task="segmentation",
        classes=["foreground"],
        input={"color": "GRAY", "size": SIZE, "resize": "stretch", "scale": 1 / 255, "mean": (0.5,), "std": (0.5,)},
        decoder={"kind": "sigmoid_threshold"},
        provenance={"architecture": "U-Net (2 levels, 16-32-64 channels)", "notes": "random initialisation"},
    )


def network() -> torch.nn.Module:
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
        )  # fmt: skip

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down1, self.down2, self.bottom = block(1, 16), block(16, 32), block(32, 64)
            self.pool = nn.MaxPool2d(2)
            self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, stride=2), block(64, 32)
            self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, stride=2), block(32, 16)
            self.out = nn.Conv2d(16, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            d1 = self.down1(x)
            d2 = self.down2(self.pool(d1))
            b = self.bottom(self.pool(d2))
            u2 = self.dec2(torch.cat([self.up2(b), d2], 1))
            u1 = self.dec1(torch.cat([self.up1(u2), d1], 1))
            return self.out(u1)

    torch.manual_seed(SEED)
    return UNet().eval()


def build(path: Path) -> str:
    from fovea.core.export import sample_input, to_onnx

    model_card = card()
    to_onnx(network(), sample_input(model_card), model_card, path, output_names=["logits"])
    return f"{path.stat().st_size / 1e3:.0f} kB, random weights"
