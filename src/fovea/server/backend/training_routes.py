"""`train`, `trainings` and `trainingSettings`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from fovea.platform import trainings
from fovea.platform.enums import ProcessType
from fovea.platform.errors import InputError
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, JsonBody, QueryId, database, settings
from fovea.server.backend.process_routes import launch

router = APIRouter(route_class=BackendRoute)


@router.post("/train", status_code=201)
def train(request: Request, user: CurrentUser, body: JsonBody) -> dict[str, Any]:
    with database(request).transaction() as db:
        process, weights = trainings.create_training(db, db.merge(user), body, settings(request).storage_dir)
        process_id, weights_id = process.id, weights.id
    launch(request, ProcessType.TRAINING, process_id)
    return {"result": "ok", "process_id": process_id, "weight_id": weights_id}


@router.get("/trainings")
def list_trainings(
    user: CurrentUser, db: DB, project_id: QueryId = None, modelweights_id: QueryId = None
) -> list[dict[str, Any]]:
    if project_id is None:
        raise InputError("Missing required parameter `project_id`")
    return [trainings.training_json(t) for t in trainings.list_trainings(db, user, project_id, modelweights_id)]


@router.get("/trainingSettings")
def training_settings(
    user: CurrentUser, db: DB, training_id: QueryId = None, property_id: QueryId = None
) -> list[dict[str, Any]]:
    if training_id is None:
        raise InputError("Missing required parameter `training_id`")
    return trainings.training_settings(db, user, training_id, property_id)
