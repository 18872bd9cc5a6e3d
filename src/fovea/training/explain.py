"""Grad-CAM for classification models: which part of the image made the network choose a class.

The ONNX weights are converted to PyTorch (onnx2torch) so gradients can flow; the image goes through the model
card's own preprocessing, so the network sees exactly what serving feeds it. The class activation map is taken at
the last convolution with a spatial output, mapped back onto the original image through the preprocessing geometry,
and drawn over it as a heat map. Needs the `train` extra (torch).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fovea.core.io import Image, read_input
from fovea.core.onnx_model import OnnxModel, Source
from fovea.core.predictions import Task
from fovea.errors import InputError

EXPLAINED_TASKS = (Task.CLASSIFICATION, Task.MULTILABEL)


@dataclass
class Explanation:
    heat: np.ndarray  # (H, W) float32 in 0..1 over the ORIGINAL image; 1 where the class evidence is strongest
    image: np.ndarray  # (H, W, 3) uint8 RGB: the original image
    class_index: int
    class_name: str
    score: float  # the model's probability for the class (as served)

    @property
    def peak(self) -> tuple[int, int]:
        """(x, y) of the strongest evidence."""
        y, x = np.unravel_index(int(np.argmax(self.heat)), self.heat.shape)
        return int(x), int(y)

    def overlay(self, alpha: float = 0.45) -> np.ndarray:
        """The image with the heat map blended over it (JET colours), RGB uint8, captioned with the class."""
        colours = cv2.applyColorMap((self.heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
        out = cv2.addWeighted(self.image, 1 - alpha, colours, alpha, 0)
        font = max(0.4, max(out.shape[:2]) / 1000)
        text = f"{self.class_name} {self.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
        cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
        return out


def _torch() -> Any:
    try:
        import onnx2torch
        import torch
    except ImportError:
        raise InputError("explanations need PyTorch: install fovea with its `train` extra") from None
    return torch, onnx2torch


def _last_spatial_conv(network: Any, sample: Any) -> Any:
    """The last convolution (in execution order) whose output still has a spatial extent above 1x1."""
    torch, _ = _torch()
    order: list[tuple[Any, tuple[int, ...]]] = []
    hooks = [
        module.register_forward_hook(lambda m, _i, out: order.append((m, tuple(out.shape))))
        for module in network.modules()
        if isinstance(module, torch.nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            network(sample)
    finally:
        for hook in hooks:
            hook.remove()
    spatial = [module for module, shape in order if len(shape) == 4 and shape[2] * shape[3] > 1]
    if not spatial:
        raise InputError("the network has no convolution with a spatial output: Grad-CAM needs one")
    return spatial[-1]


def grad_cam(model: OnnxModel, source: Source, class_index: int | None = None) -> Explanation:
    """Grad-CAM of `class_index` (default: the class the model predicts) for one image."""
    torch, onnx2torch = _torch()
    if model.task not in EXPLAINED_TASKS:
        raise InputError(f"Grad-CAM explains classification models; this one is {model.task}")
    if model.card.input.layout != "NCHW":
        raise InputError("Grad-CAM needs a network with NCHW input")
    image = model.read(source)
    if not hasattr(image, "pixels"):
        raise InputError("Grad-CAM explains 2-D images, not volumes")
    prediction = model.predict(image)
    probabilities = np.asarray(prediction.probabilities).ravel()
    target = int(prediction.labels[0]) if class_index is None else class_index
    if not 0 <= target < len(model.card.class_names):
        raise InputError(f"class index {target} out of range ({len(model.card.class_names)} classes)")
    with warnings.catch_warnings():  # onnx2torch's own deprecation notices, nothing the user can act on
        warnings.filterwarnings("ignore", category=UserWarning, module="onnx2torch")
        explanation = _grad_cam(model, image, target, probabilities, torch, onnx2torch)
    explanation.image = _full_size(model, source, image)
    return explanation


def _full_size(model: OnnxModel, source: Source, image: Image) -> np.ndarray:
    """The picture at its original size, for the heat map (which is in original pixels) to be drawn on: the
    network's copy may be a large JPEG decoded at reduced scale, as serving decodes it."""
    if image.pixels.shape[:2] == tuple(image.original_size):
        return image.pixels
    if not isinstance(source, Image):
        full = read_input(source, limits=model.limits, window=model.preprocessor.window)
        if isinstance(full, Image) and full.pixels.shape[:2] == tuple(image.original_size):
            return full.pixels
    height, width = image.original_size
    return cv2.resize(image.pixels, (width, height), interpolation=cv2.INTER_LINEAR)


def _grad_cam(
    model: OnnxModel, image: Any, target: int, probabilities: np.ndarray, torch: Any, onnx2torch: Any
) -> Explanation:
    """The class's gradient, averaged over space, weighs the last spatial convolution's channels (Selvaraju et al.)."""
    tensor, geometries = model.preprocessor([image])
    network = onnx2torch.convert(str(model.path)).eval()
    x = torch.from_numpy(np.ascontiguousarray(tensor, np.float32))
    layer = _last_spatial_conv(network, x)
    captured: dict[str, Any] = {}

    def keep(_module: Any, _inputs: Any, output: Any) -> None:
        output.retain_grad()
        captured["activations"] = output

    hook = layer.register_forward_hook(keep)
    try:
        outputs = network(x)
    finally:
        hook.remove()
    logits = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    logits.reshape(logits.shape[0], -1)[0, target].backward()
    activations = captured["activations"]
    weights = activations.grad[0].mean(dim=(1, 2))  # the class's sensitivity to each channel, averaged over space
    cam = torch.relu((weights[:, None, None] * activations[0]).sum(dim=0)).detach().numpy().astype(np.float32)
    network_size = tuple(int(v) for v in tensor.shape[2:4])
    cam = cv2.resize(cam, network_size[::-1], interpolation=cv2.INTER_LINEAR)
    heat = geometries[0].to_original_map(cam)
    heat = heat / heat.max() if heat.max() > 0 else heat
    return Explanation(
        heat=heat.astype(np.float32),
        image=image.pixels,
        class_index=target,
        class_name=model.card.class_names[target],
        score=float(probabilities[target]) if probabilities.size > target else float("nan"),
    )


def save_overlay(explanation: Explanation, path: Path) -> None:
    from fovea.core.viz import save_image

    save_image(path, explanation.overlay())
