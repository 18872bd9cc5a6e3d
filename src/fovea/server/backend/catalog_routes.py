"""`projects`, `tasks` and `models`."""

from __future__ import annotations

import shutil
from typing import Any

from fastapi import APIRouter, Request, Response

from fovea.platform import catalog, projects
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, JsonBody, PathId, QueryId, database, settings

router = APIRouter(route_class=BackendRoute)


@router.get("/tasks")
def list_tasks(user: CurrentUser, db: DB) -> list[dict[str, Any]]:
    return [catalog.task_json(t) for t in catalog.list_tasks(db)]


@router.get("/tasks/{task_id}")
def get_task(task_id: PathId, user: CurrentUser, db: DB) -> dict[str, Any]:
    return catalog.task_json(catalog.get_task(db, task_id))


@router.get("/models")
def list_models(user: CurrentUser, db: DB, task_id: QueryId = None) -> list[dict[str, Any]]:
    return [catalog.model_json(m) for m in catalog.list_models(db, task_id)]


@router.get("/models/{model_id}")
def get_model(model_id: PathId, user: CurrentUser, db: DB) -> dict[str, Any]:
    return catalog.model_json(catalog.get_model(db, model_id))


@router.post("/models", status_code=201)
def create_model(user: CurrentUser, db: DB, body: JsonBody) -> dict[str, Any]:
    return catalog.model_json(catalog.create_model(db, body.get("name"), body.get("task_id")))


@router.get("/projects")
def list_projects(user: CurrentUser, db: DB) -> list[dict[str, Any]]:
    return [projects.project_json(p) for p in projects.visible_projects(db, user)]


@router.get("/projects/{project_id}")
def get_project(project_id: PathId, user: CurrentUser, db: DB) -> dict[str, Any]:
    return projects.project_json(projects.get_project(db, user, project_id))


@router.post("/projects", status_code=201)
def create_project(user: CurrentUser, db: DB, body: JsonBody) -> dict[str, Any]:
    return projects.project_json(projects.create_project(db, user, body))


@router.put("/projects/{project_id}")
def replace_project(project_id: PathId, user: CurrentUser, db: DB, body: JsonBody) -> dict[str, Any]:
    return projects.project_json(projects.update_project(db, user, project_id, body, partial=False))


@router.patch("/projects/{project_id}")
def patch_project(project_id: PathId, user: CurrentUser, db: DB, body: JsonBody) -> dict[str, Any]:
    return projects.project_json(projects.update_project(db, user, project_id, body, partial=True))


@router.delete("/projects/{project_id}", status_code=204)
def delete_project(project_id: PathId, request: Request, user: CurrentUser) -> Response:
    with database(request).transaction() as db:
        folders = projects.delete_project(db, db.merge(user), project_id, settings(request).storage_dir)
    for folder in folders:  # only once the rows are gone for good
        shutil.rmtree(folder, ignore_errors=True)
    return Response(status_code=204)
