"""Tiny 3-D ONNX models built in the tests: a volume classifier and a volume regressor on (N, 1, D, H, W) input.

Both look at the mean of the normalised input, so a test knows what each volume must give.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from fovea.core.card import ModelCard
from tests.core.graphs import _save


def _input(card: ModelCard):
    d, h, w = card.input.size
    return helper.make_tensor_value_info("volume", TensorProto.FLOAT, ["N", 1, d, h, w])


def bright_volume_classifier(path: Path, card: ModelCard) -> Path:
    """Two classes (dark, bright): logits -/+ 20 * (mean - 0.5), so a volume whose mean input is over 0.5 is bright."""
    initializers = [
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(20.0, np.float32), "gain"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["volume"], ["mean"], axes=[2, 3, 4], keepdims=0),  # (N, 1)
        helper.make_node("Sub", ["mean", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["bright"]),
        helper.make_node("Neg", ["bright"], ["dark"]),
        helper.make_node("Concat", ["dark", "bright"], ["logits"], axis=1),
    ]
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph(nodes, "volume-classifier", [_input(card)], [y], initializers)
    return _save(graph, card, path)


def mean_regressor(path: Path, card: ModelCard) -> Path:
    """One regression output per volume: the mean and the maximum of its normalised input, (N, 2)."""
    nodes = [
        helper.make_node("ReduceMean", ["volume"], ["mean"], axes=[2, 3, 4], keepdims=0),
        helper.make_node("ReduceMax", ["volume"], ["max"], axes=[2, 3, 4], keepdims=0),
        helper.make_node("Concat", ["mean", "max"], ["values"], axis=1),
    ]
    y = helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N", 2])
    graph = helper.make_graph(nodes, "volume-regressor", [_input(card)], [y])
    return _save(graph, card, path)


def volume_card(task: str, size: tuple[int, int, int], **fields) -> ModelCard:
    """A 3-D card: gray NCDHW input at `size`, 0..255 scaled to 0..1."""
    window = fields.pop("window", None)
    spec = {"layout": "NCDHW", "color": "GRAY", "size": size, "mean": [0], "std": [1], "window": window}
    return ModelCard(name=f"{task}-3d", task=task, input=spec, **fields)
