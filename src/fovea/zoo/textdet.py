"""A pretrained text segmenter: PP-OCRv6's DBNet text detector, from the ONNX file the `rapidocr` package ships.

DBNet ("Differentiable Binarization") maps every pixel to the probability that it lies in the core of a text
line (the line shrunk to about a third of its height): a one-class segmentation. The zoo keeps the network but
drops its final sigmoid, so the file ends in `logits` (N, 1, H, W) for the card's `sigmoid_threshold` decoder,
and fixes the input at 736x736 (sides must be multiples of 32; 736 is RapidOCR's default side length). The card's
threshold, 0.3, is RapidOCR's binarisation threshold. RapidOCR then grows ("unclips") each core back into a box
around its line, by area * 1.6 / perimeter; the card's `decoder.unclip_ratio` asks Fovea's decoder for the same
step on the mask, which then covers whole glyph lines (on a printed page: 54% of the ink without it, 100% with it).

Preprocessing is RapidOCR's: BGR, pixels / 255, mean 0.5, std 0.5, the image stretched to the input size.
Letterboxed with a flat border instead, a photo without text (scikit-image's rocket) came out 33% "text" against
0.1% stretched, while a page of text gives the same mask either way.
"""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from fovea.core.card import ModelCard
from fovea.zoo.graphs import fix_spatial_size, save_with_card, set_outputs

PACKAGE = "rapidocr"
WEIGHTS_FILE = "PP-OCRv6_det_small.onnx"
SIZE = (736, 736)
UNCLIP_RATIO = 1.6  # RapidOCR's `Det.unclip_ratio` (its config.yaml)


def card() -> ModelCard:
    version = f"{PACKAGE} {metadata.version(PACKAGE)}"
    return ModelCard(
        name="ppocrv6-det-text",
        task="segmentation",
        classes=[{"name": "text", "color": "#E31A1C"}],
        input={
            "name": "x",
            "color": "BGR",
            "size": SIZE,
            "resize": "stretch",  # a letterbox's flat border makes DBNet take a whole photo for a text block
            "scale": 1 / 255,
            "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5),
        },
        decoder={"kind": "sigmoid_threshold", "outputs": ("logits",), "unclip_ratio": UNCLIP_RATIO},
        settings={"threshold": 0.3},
        provenance={
            "architecture": "DBNet (PP-OCRv6 small text detector)",
            "trained_on": "PaddleOCR's text detection data",
            "license": f"Apache-2.0 (model weights by the PaddleOCR authors; {version})",
            "notes": f"{WEIGHTS_FILE} from {version}; final sigmoid dropped, input fixed at 736x736",
        },
    )


def network() -> onnx.ModelProto:
    model = onnx.load(str(resources.files("rapidocr") / "models" / WEIGHTS_FILE))
    fix_spatial_size(model, SIZE)
    (sigmoid,) = [node for node in model.graph.node if node.output[0] == model.graph.output[0].name]
    if sigmoid.op_type != "Sigmoid":
        raise RuntimeError(f"{WEIGHTS_FILE} no longer ends in a sigmoid but in {sigmoid.op_type}")
    model.graph.node.append(helper.make_node("Identity", [sigmoid.input[0]], ["logits"]))
    set_outputs(model, [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, *SIZE])])
    return model


def build(path: Path) -> str:
    save_with_card(network(), card(), path)
    return f"{path.stat().st_size / 1e6:.1f} MB"
