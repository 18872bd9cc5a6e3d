"""Weights and their downloads on the wire (backend-api.md §6)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel

from fovea.platform.models import Weights
from fovea.platform.weights import NewWeights, WeightsChanges, default_settings
from fovea.server.backend.schemas.common import Member, as_fields, checked_later, members, required


class WeightsItem(BaseModel):
    id: int
    name: str
    model_id: int
    dataset_id: int | None
    pretrained_on: int | None
    public: bool
    users: list[Member]
    process_id: str | None  # the download or training that writes it
    layer_to_remove: str | None
    is_active: bool
    classes: str | None  # comma-separated
    settings: dict[str, Any] | None  # the model card's default inference settings

    @classmethod
    def of(cls, w: Weights) -> WeightsItem:
        return cls(
            id=w.id,
            name=w.name,
            model_id=w.model_id,
            dataset_id=w.dataset_id,
            pretrained_on=w.pretrained_on,
            public=w.public,
            users=members(w.members),
            process_id=w.process_id,
            layer_to_remove=w.layer_to_remove,
            is_active=w.is_active,
            classes=w.classes,
            settings=default_settings(w.card) if w.card else None,
        )


class WeightsUpload(BaseModel):
    """`POST weights`: multipart with the ONNX file as `onnx_data`, or JSON with `onnx_url` (downloaded later)."""

    model_config = required("name", "model_id")

    name: Annotated[Any, checked_later(str)] = None
    model_id: Annotated[Any, checked_later(int)] = None
    dataset_id: Annotated[Any, checked_later(int | None)] = None
    public: Annotated[Any, checked_later(bool)] = False
    users: Annotated[Any, checked_later(str | list[Member] | None)] = None  # a JSON string in a multipart form
    layer_to_remove: Annotated[Any, checked_later(str | None)] = None
    classes: Annotated[Any, checked_later(str | list[str] | None)] = None
    onnx_url: Annotated[Any, checked_later(str | None)] = None
    onnx_data: Annotated[Any, checked_later(bytes | None)] = None  # read by the route, as a file

    def weights(self) -> NewWeights:
        return as_fields(self, NewWeights)


class WeightsFields(BaseModel):
    """`PUT`/`PATCH weights/{id}`: what changes (`users` replaces the list)."""

    name: Annotated[Any, checked_later(str | None)] = None
    public: Annotated[Any, checked_later(bool | None)] = None
    users: Annotated[Any, checked_later(list[Member] | None)] = None
    dataset_id: Annotated[Any, checked_later(int | None)] = None
    layer_to_remove: Annotated[Any, checked_later(str | None)] = None
    classes: Annotated[Any, checked_later(str | list[str] | None)] = None
    model_id: Annotated[Any, checked_later(int | None)] = None  # read-only: when sent, it must equal the stored value
    pretrained_on: Annotated[Any, checked_later(int | None)] = None  # read-only, likewise

    def changes(self) -> WeightsChanges:
        return as_fields(self, WeightsChanges)


class WeightsCreated(BaseModel):
    result: Literal["ok"] = "ok"
    weight_id: int
    process_id: str | None = None  # only for an `onnx_url` upload: the download's id, for `weightsStatus`


class DownloadStatus(BaseModel):
    """`weightsStatus`: a URL upload's download and validation (`error` only once it failed)."""

    process_type: Literal["Model Weight downloading"] = "Model Weight downloading"
    result: str  # pending, running, finished or failed
    error: str | None = None
