"""Editing ONNX graphs that packages ship, for the zoo: fix the input size, drop unused parts, save with a card.

The zoo's pretrained detector and text segmenter come as ONNX files already; they need a few nodes added or
removed (anchor decoding, a final sigmoid) rather than a re-export, so their weights reach Fovea untouched.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from fovea.core.card import ModelCard, embed_card
from fovea.paths import atomic_path


def fix_spatial_size(model: onnx.ModelProto, size: tuple[int, int]) -> None:
    """Give the (N, C, H, W) graph input a fixed height and width; the batch axis stays dynamic."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].Clear()
    dims[0].dim_param = "batch"
    for dim, value in zip(dims[2:], size, strict=True):
        dim.Clear()
        dim.dim_value = value


def set_outputs(model: onnx.ModelProto, outputs: list[onnx.ValueInfoProto]) -> None:
    """Make `outputs` the graph's outputs, then drop every node and weight that no longer feeds one."""
    graph = model.graph
    del graph.output[:]
    graph.output.extend(outputs)
    needed = {o.name for o in outputs}
    kept = []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    weights = [w for w in graph.initializer if w.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(weights)
    shapes = [v for v in graph.value_info if v.name in needed]  # the old shapes may name dropped tensors
    del graph.value_info[:]
    graph.value_info.extend(shapes)


def save_with_card(model: onnx.ModelProto, card: ModelCard, path: Path) -> None:
    """Embed `card`, check the graph (onnx.checker, full shape inference) and write it atomically to `path`."""
    embed_card(model, card)
    onnx.checker.check_model(model, full_check=True)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
