"""Hyperparameter properties and their per-model rows on the wire (backend-api.md §10)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel

from fovea.platform.allowed_properties import RowFields
from fovea.platform.models import AllowedProperty, Property
from fovea.server.backend.schemas.common import as_fields, checked_later


class PropertyItem(BaseModel):
    id: int
    name: str
    type: str  # float, integer, list or string
    default: str | None
    values: str | None  # a list property's allowed values, comma-separated

    @classmethod
    def of(cls, prop: Property) -> PropertyItem:
        return cls(id=prop.id, name=prop.name, type=prop.type, default=prop.default, values=prop.values)


class AllowedPropertyItem(BaseModel):
    id: int
    allowed_value: str | None
    default_value: str | None
    property_id: int
    model_id: int
    dataset_id: int | None

    @classmethod
    def of(cls, row: AllowedProperty) -> AllowedPropertyItem:
        return cls(
            id=row.id,
            allowed_value=row.allowed_value,
            default_value=row.default_value,
            property_id=row.property_id,
            model_id=row.model_id,
            dataset_id=row.dataset_id,
        )


class AllowedPropertyFields(BaseModel):
    """`POST allowedProperties` (staff only), `PUT`/`PATCH allowedProperties/{id}` (what changes)."""

    model_id: Annotated[Any, checked_later(int | None)] = None
    property_id: Annotated[Any, checked_later(int | None)] = None
    dataset_id: Annotated[Any, checked_later(int | None)] = None
    allowed_value: Annotated[Any, checked_later(str | None)] = None
    default_value: Annotated[Any, checked_later(str | None)] = None

    def fields(self) -> RowFields:
        return as_fields(self, RowFields)
