"""Engines run a network: raw tensors in, raw tensors out. ONNX Runtime is the default."""

from fovea.core.engines.onnxruntime import OnnxEngine, available_providers

__all__ = ["OnnxEngine", "available_providers"]
