"""`train`, `trainings` and `trainingSettings`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from fovea.platform import trainings
from fovea.platform.errors import InputError
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, JsonBody, QueryId, database, settings
from fovea.server.backend.process_routes import jobs
from fovea.server.backend.schemas.common import json_body_schema, parse_body
from fovea.server.backend.schemas.trainings import (
    ProducedWeightsItem,
    TrainingCreated,
    TrainingItem,
    TrainingSettingItem,
    TrainRequest,
)

router = APIRouter(route_class=BackendRoute)


@router.post("/train", status_code=201, openapi_extra=json_body_schema(TrainRequest))
def train(request: Request, user: CurrentUser, body: JsonBody) -> TrainingCreated:
    order = parse_body(TrainRequest, body).order()
    storage = settings(request).storage_dir
    process_id, weights_id = trainings.launch_training(database(request), user, order, storage, jobs(request))
    return TrainingCreated(process_id=process_id, weight_id=weights_id)


@router.get("/trainings")
def list_trainings(
    user: CurrentUser, db: DB, project_id: QueryId = None, modelweights_id: QueryId = None
) -> list[TrainingItem]:
    if project_id is None:
        raise InputError("Missing required parameter `project_id`")
    return [TrainingItem.of(t) for t in trainings.list_trainings(db, user, project_id, modelweights_id)]


@router.get("/trainingSettings")
def training_settings(
    user: CurrentUser, db: DB, training_id: QueryId = None, property_id: QueryId = None
) -> list[TrainingSettingItem | ProducedWeightsItem]:
    """The values the training ran with; without `property_id`, what it produced as the last element."""
    if training_id is None:
        raise InputError("Missing required parameter `training_id`")
    stored, produced = trainings.training_settings(db, user, training_id, property_id)
    rows: list[TrainingSettingItem | ProducedWeightsItem] = [TrainingSettingItem.of(s) for s in stored]
    return rows if produced is None else [*rows, ProducedWeightsItem.of(produced)]
