"""`properties` (read-only) and `allowedProperties` (staff writes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from fovea.platform import allowed_properties, properties
from fovea.platform.datasets import get_dataset
from fovea.platform.errors import InputError
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, JsonBody, PathId, QueryId

router = APIRouter(route_class=BackendRoute)


@router.get("/properties")
def list_properties(user: CurrentUser, db: DB, name: str | None = None) -> list[dict[str, Any]]:
    return [properties.property_json(p) for p in properties.list_properties(db, name)]


@router.get("/properties/{property_id}")
def get_property(property_id: PathId, user: CurrentUser, db: DB) -> dict[str, Any]:
    return properties.property_json(properties.get_property(db, property_id))


@router.get("/allowedProperties")
def list_allowed(
    user: CurrentUser,
    db: DB,
    model_id: QueryId = None,
    property_id: QueryId = None,
    dataset_id: QueryId = None,
) -> list[dict[str, Any]]:
    if model_id is None:
        raise InputError("Missing required parameter `model_id`")
    if dataset_id is not None:
        get_dataset(db, user, dataset_id)
    return [allowed_properties.row_json(r) for r in allowed_properties.list_rows(db, model_id, property_id, dataset_id)]


@router.post("/allowedProperties", status_code=201)
def create_allowed(user: CurrentUser, db: DB, body: JsonBody) -> dict[str, Any]:
    return allowed_properties.row_json(allowed_properties.save(db, user, body))


@router.put("/allowedProperties/{row_id}")
@router.patch("/allowedProperties/{row_id}")
def update_allowed(row_id: PathId, user: CurrentUser, db: DB, body: JsonBody) -> dict[str, Any]:
    row = allowed_properties.get_row(db, row_id)
    return allowed_properties.row_json(allowed_properties.save(db, user, body, row))
