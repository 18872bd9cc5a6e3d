"""The network a training starts from: an ONNX pretraining converted to PyTorch, kept whole or cut and re-headed.

Fine-tuning rules (backend-api.md §11): "inherit" trains the converted network as it is; "new head" removes the
`layer_to_remove` node and everything downstream of it, and attaches a freshly initialised head for the dataset's
classes to the tensor that fed that node. The head is a module called `final_layer`, and its node in the exported
ONNX graph is renamed `final_layer`, so the new weights can be fine-tuned in turn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from fovea.core.predictions import Task

FINAL_LAYER = "final_layer"


class NetworkError(ValueError):
    """The pretraining cannot become the requested network (the message says why)."""


def cut_graph(model: onnx.ModelProto, layer: str) -> onnx.ModelProto:
    """`model` without the node `layer` and its downstream nodes; the tensor that fed it becomes the only output."""
    graph = model.graph
    index = next((i for i, node in enumerate(graph.node) if node.name == layer), None)
    if index is None:
        raise NetworkError(f"the graph has no node named {layer!r}")
    feed = graph.node[index].input[0]
    removed, tainted = {index}, set(graph.node[index].output)
    for i, node in enumerate(graph.node[index + 1 :], start=index + 1):  # graph nodes are topologically sorted
        if tainted.intersection(node.input):
            removed.add(i)
            tainted.update(node.output)
    kept = [node for i, node in enumerate(graph.node) if i not in removed]
    used = {name for node in kept for name in node.input}
    cut = onnx.helper.make_graph(
        kept,
        graph.name,
        list(graph.input),
        [onnx.helper.make_tensor_value_info(feed, onnx.TensorProto.FLOAT, None)],
        [init for init in graph.initializer if init.name in used],
    )
    return onnx.helper.make_model(cut, opset_imports=model.opset_import, ir_version=model.ir_version)


def _convert(model: onnx.ModelProto) -> nn.Module:
    from onnx2torch import convert

    try:
        return convert(model)
    except Exception as exc:  # onnx2torch raises NotImplementedError and others for unsupported nodes
        raise NetworkError(f"the ONNX graph cannot be converted to PyTorch: {type(exc).__name__}: {exc}") from None


def _strip_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    del model.metadata_props[:]
    return model


class Headed(nn.Module):
    """A cut backbone plus a new head; `final_layer` is the head's learnable layer."""

    def __init__(self, backbone: nn.Module, head: nn.Module, flatten: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.flatten = nn.Flatten() if flatten else nn.Identity()
        self.final_layer = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.flatten(self.backbone(x)))


def _removed_kernel(model: onnx.ModelProto, layer: str) -> int:
    node = next(n for n in model.graph.node if n.name == layer)
    if node.op_type != "Conv":
        return 1
    for attribute in node.attribute:
        if attribute.name == "kernel_shape":
            return int(attribute.ints[0])
    weight = next(init for init in model.graph.initializer if init.name == node.input[1])
    return int(weight.dims[-1])


def load_network(
    onnx_path: Path, task: Task, num_outputs: int, *, layer_to_remove: str | None, sample: np.ndarray
) -> nn.Module:
    """The trainable network: the whole pretraining (layer_to_remove None), or cut and given a new head.

    `sample` is one input batch of the training's shape; it sizes the head from the cut tensor. The network
    outputs logits (segmentation: N x C x H x W); the loss and the exported model add the activation.
    """
    model = _strip_metadata(onnx.load(str(onnx_path)))
    if layer_to_remove is None:
        return _convert(model)
    kernel = _removed_kernel(model, layer_to_remove)
    backbone = _convert(cut_graph(model, layer_to_remove))
    with torch.no_grad():
        features = backbone.eval()(torch.from_numpy(sample))
    if task is Task.SEGMENTATION:
        if features.ndim != 4:
            raise NetworkError(f"the tensor feeding {layer_to_remove!r} is not a feature map (shape {features.shape})")
        head: nn.Module = nn.Conv2d(features.shape[1], num_outputs, kernel, padding=kernel // 2)
        return Headed(backbone, head, flatten=False)
    return Headed(backbone, nn.Linear(int(np.prod(features.shape[1:])), num_outputs), flatten=features.ndim > 2)


def name_final_layer(model: onnx.ModelProto) -> None:
    """Rename the exported head's node `final_layer` (it reads the `final_layer.weight` initializer)."""
    for node in model.graph.node:
        reads_head = any(name.startswith(f"{FINAL_LAYER}.") for name in node.input)
        if reads_head and node.op_type in ("Gemm", "MatMul", "Conv"):
            node.name = FINAL_LAYER
            return
    raise NetworkError("the exported graph has no head node to name final_layer")
