"""The model card: everything needed to use a weights file correctly.

A card lives inside the ONNX file (`metadata_props["fovea.card"]`, JSON) so that a weights file is
self-describing; a side-car `model.yaml` / `model.json` next to a plain ONNX file describes it too.

`input.window` fixes how scanner values (NIfTI voxels, DICOM pixels after RescaleSlope/Intercept, e.g. Hounsfield
units for CT) become the 0..255 range that `scale`, `mean` and `std` then normalise: `{level: 40, width: 400}` maps
-160..240 HU, `{range: [0, 1000]}` maps 0..1000; values outside are clipped. Every scan then reaches the network
with the same intensities. Without a window a scan is min-max scaled over its own range, as before. Raster images
(PNG, JPEG...) have no scanner units: the window does not apply to them. See docs/model-card.md.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fovea.core.predictions import Task
from fovea.errors import CardError

CARD_KEY = "fovea.card"

# A readable, colour-blind-friendly cycle (Tableau 10) for classes whose card gives no colour.
_PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassInfo(_Strict):
    name: str = Field(min_length=1)
    color: tuple[int, int, int] | None = None
    supercategory: str | None = None
    display: bool = True  # False hides the class from results (e.g. a background), though it stays listed

    @field_validator("color", mode="before")
    @classmethod
    def _parse_hex(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.lstrip("#")
            if len(text) != 6:
                raise ValueError(f"colour {value!r} is not #RRGGBB")
            return tuple(int(text[i : i + 2], 16) for i in (0, 2, 4))
        return value


ResizeMode = Literal["stretch", "letterbox", "center_crop"]


class Window(_Strict):
    """Scanner values mapped linearly onto 0..255: `level` and `width` (a DICOM/HU window), or a fixed `range`."""

    level: float | None = None
    width: float | None = Field(None, gt=0)
    range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Window:
        centred = self.level is not None or self.width is not None
        if centred == (self.range is not None):
            raise ValueError("a window is either `level` and `width` or `range: [low, high]`")
        if centred and (self.level is None or self.width is None):
            raise ValueError("a window needs both `level` and `width`")
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError("a window's range must be [low, high] with low < high")
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high): the scanner values that become 0 and 255."""
        if self.range is not None:
            return self.range
        half = self.width / 2  # type: ignore[operator]
        return self.level - half, self.level + half  # type: ignore[operator]


class InputSpec(_Strict):
    """How an image becomes the network's input tensor."""

    name: str | None = None  # input tensor name; the graph's first input when None
    layout: Literal["NCHW", "NHWC", "NCDHW"] = "NCHW"
    color: Literal["RGB", "BGR", "GRAY", "HSV", "YCBCR"] = "RGB"  # fovea.core.colour converts decoded RGB to it
    size: tuple[int, ...] = (224, 224)  # (height, width), or (depth, height, width) for 3-D models
    resize: ResizeMode = "stretch"
    crop_pct: float = Field(0.875, gt=0, le=1)  # center_crop: the shorter side is resized to size / crop_pct
    pad_value: int = Field(114, ge=0, le=255)  # letterbox border
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    dtype: Literal["float32", "float16", "uint8"] = "float32"
    dynamic_batch: bool = True
    window: Window | None = None  # scanner values to 0..255 (volumes, DICOM); min-max per scan when None

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    @property
    def dims(self) -> int:
        return len(self.size)

    @model_validator(mode="after")
    def _check(self) -> InputSpec:
        if self.layout == "NCDHW" and self.dims != 3:
            raise ValueError("layout NCDHW needs a 3-value size (depth, height, width)")
        if self.layout != "NCDHW" and self.dims != 2:
            raise ValueError(f"layout {self.layout} needs a 2-value size (height, width)")
        if any(s <= 0 for s in self.size):
            raise ValueError("size values must be positive")
        for field_name in ("mean", "std"):
            if len(getattr(self, field_name)) not in (1, self.channels):
                raise ValueError(f"{field_name} must have 1 or {self.channels} values")
        if any(s == 0 for s in self.std):
            raise ValueError("std values must not be zero")
        return self


DecoderKind = Literal[
    "softmax", "sigmoid", "identity",  # classification / multilabel / regression
    "yolov8", "yolov5", "boxes_scores", "boxes_labels_scores",  # detection
    "argmax", "sigmoid_threshold",  # segmentation
]  # fmt: skip

_DECODERS_BY_TASK: dict[Task, set[str]] = {
    Task.CLASSIFICATION: {"softmax", "sigmoid", "identity"},
    Task.MULTILABEL: {"sigmoid", "identity"},
    Task.DETECTION: {"yolov8", "yolov5", "boxes_scores", "boxes_labels_scores"},
    Task.SEGMENTATION: {"argmax", "sigmoid_threshold"},
    Task.REGRESSION: {"identity"},
}


class DecoderSpec(_Strict):
    """How raw outputs become a Prediction."""

    kind: DecoderKind
    outputs: tuple[str, ...] | None = None  # output tensor names in decoder order; graph order when None
    box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy"  # detection boxes in network pixels ...
    normalized_boxes: bool = False  # ... or as fractions of the network input size
    background_index: int | None = None  # segmentation/detection class that is not reported
    unclip_ratio: float = Field(0.0, ge=0)  # sigmoid_threshold: grow each mask region (DBNet's unclip); 0 = off


class Provenance(_Strict):
    architecture: str | None = None
    trained_on: str | None = None
    parent_weights: str | None = None
    license: str | None = None
    notes: str | None = None


DEFAULT_SETTINGS: dict[Task, dict[str, Any]] = {
    Task.CLASSIFICATION: {"top_k": 5},
    Task.MULTILABEL: {"threshold": 0.5},
    Task.DETECTION: {"conf_thres": 0.25, "iou_thres": 0.45, "max_det": 100, "classes": None},
    Task.SEGMENTATION: {"threshold": 0.5, "classes": None},
    Task.REGRESSION: {},
}


class ModelCard(_Strict):
    schema_version: Literal[1] = 1
    name: str = "model"
    task: Task
    classes: tuple[ClassInfo, ...] = ()
    regressions: tuple[str, ...] = ()  # names of scalar outputs, for regression
    input: InputSpec = InputSpec()
    decoder: DecoderSpec
    settings: dict[str, Any] = Field(default_factory=dict)  # overrides of the task's default settings
    provenance: Provenance = Provenance()

    @field_validator("classes", mode="before")
    @classmethod
    def _names_to_classes(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _check(self) -> ModelCard:
        if self.decoder.kind not in _DECODERS_BY_TASK[self.task]:
            allowed = ", ".join(sorted(_DECODERS_BY_TASK[self.task]))
            raise ValueError(f"decoder {self.decoder.kind!r} does not fit task {self.task}; use one of {allowed}")
        if self.task is Task.REGRESSION:
            if not self.regressions:
                raise ValueError("a regression card needs `regressions` (the names of its outputs)")
        elif not self.classes:
            raise ValueError(f"a {self.task} card needs `classes`")
        if self.decoder.unclip_ratio and self.decoder.kind != "sigmoid_threshold":
            raise ValueError("decoder.unclip_ratio applies to the sigmoid_threshold decoder only")
        if self.task is Task.DETECTION and self.input.dims == 3:
            raise ValueError("3-D detection is not supported (a 3-D model classifies, segments or regresses)")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError("class names must be unique")
        unknown = set(self.settings) - set(DEFAULT_SETTINGS[self.task])
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)} for task {self.task}")
        return self

    # Cached: a card is immutable, and decoders read these on every request (1000 names for ImageNet).
    _CACHED = ("class_names", "displayed", "colors")

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> ModelCard:
        copy = super().model_copy(update=update, deep=deep)
        for name in self._CACHED:  # a copy with other classes must not keep this card's cached values
            copy.__dict__.pop(name, None)
        return copy

    @cached_property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @cached_property
    def displayed(self) -> np.ndarray:
        """A boolean per class: False for classes the card hides."""
        return np.array([c.display for c in self.classes], bool)

    @cached_property
    def colors(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(c.color or _PALETTE[i % len(_PALETTE)] for i, c in enumerate(self.classes))

    @property
    def default_settings(self) -> dict[str, Any]:
        return {**DEFAULT_SETTINGS[self.task], **self.settings}

    # -- serialisation ---------------------------------------------------------------------------

    def to_json(self) -> str:
        # A card without a window is written as before it had the field, so older readers still load it.
        exclude = {"input": {"window"}} if self.input.window is None else None
        return self.model_dump_json(exclude_defaults=False, exclude=exclude)

    @classmethod
    def from_data(cls, data: Any, origin: str = "card") -> ModelCard:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'card'}: {err['msg']}" for err in exc.errors()
            )
            raise CardError(f"invalid model card in {origin}: {problems}") from None

    @classmethod
    def from_json(cls, text: str | bytes, origin: str = "card") -> ModelCard:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CardError(f"model card in {origin} is not valid JSON: {exc}") from None
        return cls.from_data(data, origin)

    @classmethod
    def from_file(cls, path: str | Path) -> ModelCard:
        """Read a side-car card (.json, .yaml or .yml)."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise CardError(f"cannot read model card {path}: {exc.strerror}") from None
        if path.suffix.lower() == ".json":
            return cls.from_json(text, str(path))
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CardError(f"model card {path} is not valid YAML: {exc}") from None
        return cls.from_data(data, str(path))


# -- cards inside ONNX files --------------------------------------------------------------------


def embed_card(model: Any, card: ModelCard) -> None:
    """Write `card` into an `onnx.ModelProto`'s metadata_props, replacing any earlier card."""
    for i, prop in enumerate(model.metadata_props):
        if prop.key == CARD_KEY:
            del model.metadata_props[i]
            break
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card.to_json()


def card_from_onnx_metadata(metadata: dict[str, str], origin: str) -> ModelCard | None:
    """The card in an ONNX file's custom metadata map, or None if it has none."""
    text = metadata.get(CARD_KEY)
    return None if text is None else ModelCard.from_json(text, origin)


def sidecar_paths(onnx_path: Path) -> list[Path]:
    stem = onnx_path.with_suffix("")
    return [stem.with_suffix(s) for s in (".yaml", ".yml", ".json")]


def load_card(onnx_path: str | Path, metadata: dict[str, str] | None = None) -> ModelCard:
    """The card of an ONNX file: its embedded card, else a side-car file beside it.

    `metadata` is the file's custom metadata map when the caller already has it (an engine does);
    otherwise the ONNX header is read without loading the weights' tensors.
    """
    path = Path(onnx_path)
    if metadata is None:
        metadata = read_onnx_metadata(path)
    card = card_from_onnx_metadata(metadata, str(path))
    if card is not None:
        return card
    for candidate in sidecar_paths(path):
        if candidate.is_file():
            return ModelCard.from_file(candidate)
    names = ", ".join(p.name for p in sidecar_paths(path))
    raise CardError(f"{path.name} has no embedded model card ({CARD_KEY}) and no side-car card ({names})")


def read_onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise CardError(f"model file not found: {path}") from None
    except Exception:
        raise CardError(f"{path.name}: ONNX file is malformed") from None
    return {p.key: p.value for p in model.metadata_props}
