"""Tiny ONNX graphs with known outputs, built in the tests, for checking decoders and geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fovea.core.card import ModelCard, embed_card

OPSET = [helper.make_opsetid("", 17)]


def _save(graph: onnx.GraphProto, card: ModelCard, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    embed_card(model, card)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def constant_outputs(path: Path, card: ModelCard, outputs: dict[str, np.ndarray], input_shape=None) -> Path:
    """A graph whose outputs are the given constants broadcast over the batch: (N, *value.shape[1:])."""
    c = card.input.channels
    h, w = card.input.size
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape or ["N", c, h, w])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
    ]
    initializers = [numpy_helper.from_array(np.array(0, np.float32), "zero")]
    value_infos = []
    for name, value in outputs.items():
        value = np.asarray(value)
        rank = value.ndim
        axes = numpy_helper.from_array(np.arange(1, rank, dtype=np.int64), f"{name}_axes")
        initializers += [numpy_helper.from_array(value.astype(np.float32), f"{name}_const"), axes]
        nodes += [
            helper.make_node("Unsqueeze", ["zeros", f"{name}_axes"], [f"{name}_z"]),
            helper.make_node("Add", [f"{name}_z", f"{name}_const"], [name]),
        ]
        value_infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *value.shape[1:]]))
    graph = helper.make_graph(nodes, "constant", [x], value_infos, initializers)
    return _save(graph, card, path)


def bright_pixels_segmenter(path: Path, card: ModelCard) -> Path:
    """Two-class segmentation: class 1 wherever the (normalised) red channel is above 0.5."""
    h, w = card.input.size
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, h, w])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, h, w])
    initializers = [
        numpy_helper.from_array(np.array([0], np.int64), "starts"),
        numpy_helper.from_array(np.array([1], np.int64), "ends"),
        numpy_helper.from_array(np.array([1], np.int64), "channel_axis"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(20.0, np.float32), "gain"),
    ]
    nodes = [
        helper.make_node("Slice", ["images", "starts", "ends", "channel_axis"], ["red"]),
        helper.make_node("Sub", ["red", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["fg"]),
        helper.make_node("Neg", ["fg"], ["bg"]),
        helper.make_node("Concat", ["bg", "fg"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(nodes, "segmenter", [x], [y], initializers)
    return _save(graph, card, path)


def bright_voxels_segmenter(path: Path, card: ModelCard) -> Path:
    """3-D segmentation on (N, 1, D, H, W): class 1 wherever the normalised voxel is above 0.5."""
    d, h, w = card.input.size
    x = helper.make_tensor_value_info("volume", TensorProto.FLOAT, ["N", 1, d, h, w])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, d, h, w])
    initializers = [
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(20.0, np.float32), "gain"),
    ]
    nodes = [
        helper.make_node("Sub", ["volume", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["fg"]),
        helper.make_node("Neg", ["fg"], ["bg"]),
        helper.make_node("Concat", ["bg", "fg"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(nodes, "voxels", [x], [y], initializers)
    return _save(graph, card, path)
