"""`properties` (read-only) and `allowedProperties` (staff writes)."""

from __future__ import annotations

from fastapi import APIRouter

from fovea.platform import allowed_properties, properties
from fovea.platform.datasets import get_dataset
from fovea.platform.errors import InputError
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, JsonBody, PathId, QueryId
from fovea.server.backend.schemas.common import json_body_schema, parse_body
from fovea.server.backend.schemas.properties import AllowedPropertyFields, AllowedPropertyItem, PropertyItem

router = APIRouter(route_class=BackendRoute)


@router.get("/properties")
def list_properties(user: CurrentUser, db: DB, name: str | None = None) -> list[PropertyItem]:
    return [PropertyItem.of(p) for p in properties.list_properties(db, name)]


@router.get("/properties/{property_id}")
def get_property(property_id: PathId, user: CurrentUser, db: DB) -> PropertyItem:
    return PropertyItem.of(properties.get_property(db, property_id))


@router.get("/allowedProperties")
def list_allowed(
    user: CurrentUser,
    db: DB,
    model_id: QueryId = None,
    property_id: QueryId = None,
    dataset_id: QueryId = None,
) -> list[AllowedPropertyItem]:
    if model_id is None:
        raise InputError("Missing required parameter `model_id`")
    if dataset_id is not None:
        get_dataset(db, user, dataset_id)
    return [AllowedPropertyItem.of(r) for r in allowed_properties.list_rows(db, model_id, property_id, dataset_id)]


@router.post("/allowedProperties", status_code=201, openapi_extra=json_body_schema(AllowedPropertyFields))
def create_allowed(user: CurrentUser, db: DB, body: JsonBody) -> AllowedPropertyItem:
    return AllowedPropertyItem.of(allowed_properties.save(db, user, parse_body(AllowedPropertyFields, body).fields()))


@router.put("/allowedProperties/{row_id}", openapi_extra=json_body_schema(AllowedPropertyFields))
@router.patch("/allowedProperties/{row_id}", openapi_extra=json_body_schema(AllowedPropertyFields))
def update_allowed(row_id: PathId, user: CurrentUser, db: DB, body: JsonBody) -> AllowedPropertyItem:
    row = allowed_properties.get_row(db, row_id)
    fields = parse_body(AllowedPropertyFields, body).fields()
    return AllowedPropertyItem.of(allowed_properties.save(db, user, fields, row))
