"""`projects`, `tasks` and `models`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from fovea.platform import catalog, projects
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, JsonBody, PathId, QueryId, database, settings
from fovea.server.backend.schemas.catalog import ModelItem, NewModel, ProjectItem, ProjectRequest, TaskItem
from fovea.server.backend.schemas.common import json_body_schema, parse_body

router = APIRouter(route_class=BackendRoute)


@router.get("/tasks")
def list_tasks(user: CurrentUser, db: DB) -> list[TaskItem]:
    return [TaskItem.of(t) for t in catalog.list_tasks(db)]


@router.get("/tasks/{task_id}")
def get_task(task_id: PathId, user: CurrentUser, db: DB) -> TaskItem:
    return TaskItem.of(catalog.get_task(db, task_id))


@router.get("/models")
def list_models(user: CurrentUser, db: DB, task_id: QueryId = None) -> list[ModelItem]:
    return [ModelItem.of(m) for m in catalog.list_models(db, task_id)]


@router.get("/models/{model_id}")
def get_model(model_id: PathId, user: CurrentUser, db: DB) -> ModelItem:
    return ModelItem.of(catalog.get_model(db, model_id))


@router.post("/models", status_code=201, openapi_extra=json_body_schema(NewModel))
def create_model(user: CurrentUser, db: DB, body: JsonBody) -> ModelItem:
    return ModelItem.of(catalog.create_model(db, body.get("name"), body.get("task_id")))


@router.get("/projects")
def list_projects(user: CurrentUser, db: DB) -> list[ProjectItem]:
    return [ProjectItem.of(p) for p in projects.visible_projects(db, user)]


@router.get("/projects/{project_id}")
def get_project(project_id: PathId, user: CurrentUser, db: DB) -> ProjectItem:
    return ProjectItem.of(projects.get_project(db, user, project_id))


@router.post("/projects", status_code=201, openapi_extra=json_body_schema(ProjectRequest))
def create_project(user: CurrentUser, db: DB, body: JsonBody) -> ProjectItem:
    return ProjectItem.of(projects.create_project(db, user, parse_body(ProjectRequest, body).fields()))


@router.put("/projects/{project_id}", openapi_extra=json_body_schema(ProjectRequest))
def replace_project(project_id: PathId, user: CurrentUser, db: DB, body: JsonBody) -> ProjectItem:
    fields = parse_body(ProjectRequest, body).fields()
    return ProjectItem.of(projects.update_project(db, user, project_id, fields, partial=False))


@router.patch("/projects/{project_id}", openapi_extra=json_body_schema(ProjectRequest))
def patch_project(project_id: PathId, user: CurrentUser, db: DB, body: JsonBody) -> ProjectItem:
    fields = parse_body(ProjectRequest, body).fields()
    return ProjectItem.of(projects.update_project(db, user, project_id, fields, partial=True))


@router.delete("/projects/{project_id}", status_code=204)
def delete_project(project_id: PathId, request: Request, user: CurrentUser) -> Response:
    projects.delete_project(database(request), user, project_id, settings(request).storage_dir)
    return Response(status_code=204)
