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

__all__ = [
    "BaseInferenceModel",
    "CardError",
    "ExportError",
    "FoveaError",
    "Image",
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
