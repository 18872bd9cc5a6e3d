"""Fovea: a self-hosted computer-vision model platform.

The public Python API lives here; everything else is an implementation detail of its layer.
"""

from fovea.client.session import Session
from fovea.core.card import ModelCard
from fovea.core.io import Image, Volume
from fovea.core.model import BaseInferenceModel
from fovea.core.onnx_model import OnnxModel, load
from fovea.core.predictions import Prediction, Task
from fovea.errors import CardError, ExportError, FoveaError, InputError, LimitExceeded

__version__ = "0.1.0"

# Served on first use, so `import fovea` does not load the web stack.
_LAZY = {
    "InferAPP": "fovea.server.infer_app",
    "BaseAiCOCOInputDataModel": "fovea.server.infer_app",
    "BaseAiCOCOOutputDataModel": "fovea.server.infer_app",
    **{
        f"AiCOCO{task}OutputStrategy": "fovea.core.formats.strategies"
        for task in ("Classification", "Detection", "Regression", "Segmentation")
    },
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fovea' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API only: subpackages bound by the imports above (`core`, `client`, ...) are not part of it."""
    return sorted(__all__)


__all__ = [
    "AiCOCOClassificationOutputStrategy",
    "AiCOCODetectionOutputStrategy",
    "AiCOCORegressionOutputStrategy",
    "AiCOCOSegmentationOutputStrategy",
    "BaseAiCOCOInputDataModel",
    "BaseAiCOCOOutputDataModel",
    "BaseInferenceModel",
    "CardError",
    "ExportError",
    "FoveaError",
    "Image",
    "InferAPP",
    "InputError",
    "LimitExceeded",
    "ModelCard",
    "OnnxModel",
    "Prediction",
    "Session",
    "Task",
    "Volume",
    "load",
]
