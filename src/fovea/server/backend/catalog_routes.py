"""`projects`, `tasks` and `models`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from fovea.platform import catalog, projects
from fovea.server.backend.deps import DB, BackendRoute, CurrentUser, json_body

router = APIRouter(route_class=BackendRoute)


@router.get("/tasks")
async def list_tasks(user: CurrentUser, db: DB) -> list[dict[str, Any]]:
    return [catalog.task_json(t) for t in catalog.list_tasks(db)]


@router.get("/tasks/{task_id}")
async def get_task(task_id: int, user: CurrentUser, db: DB) -> dict[str, Any]:
    return catalog.task_json(catalog.get_task(db, task_id))


@router.get("/models")
async def list_models(user: CurrentUser, db: DB, task_id: int | None = None) -> list[dict[str, Any]]:
    return [catalog.model_json(m) for m in catalog.list_models(db, task_id)]


@router.get("/models/{model_id}")
async def get_model(model_id: int, user: CurrentUser, db: DB) -> dict[str, Any]:
    return catalog.model_json(catalog.get_model(db, model_id))


@router.post("/models", status_code=201)
async def create_model(request: Request, user: CurrentUser, db: DB) -> dict[str, Any]:
    body = await json_body(request)
    return catalog.model_json(catalog.create_model(db, body.get("name"), body.get("task_id")))


@router.get("/projects")
async def list_projects(user: CurrentUser, db: DB) -> list[dict[str, Any]]:
    return [projects.project_json(p) for p in projects.visible_projects(db, user)]


@router.get("/projects/{project_id}")
async def get_project(project_id: int, user: CurrentUser, db: DB) -> dict[str, Any]:
    return projects.project_json(projects.get_project(db, user, project_id))


@router.post("/projects", status_code=201)
async def create_project(request: Request, user: CurrentUser, db: DB) -> dict[str, Any]:
    return projects.project_json(projects.create_project(db, user, await json_body(request)))


@router.put("/projects/{project_id}")
async def replace_project(project_id: int, request: Request, user: CurrentUser, db: DB) -> dict[str, Any]:
    body = await json_body(request)
    return projects.project_json(projects.update_project(db, user, project_id, body, partial=False))


@router.patch("/projects/{project_id}")
async def patch_project(project_id: int, request: Request, user: CurrentUser, db: DB) -> dict[str, Any]:
    body = await json_body(request)
    return projects.project_json(projects.update_project(db, user, project_id, body, partial=True))


@router.delete("/projects/{project_id}", status_code=204)
async def delete_project(project_id: int, user: CurrentUser, db: DB) -> Response:
    projects.delete_project(db, user, project_id)
    return Response(status_code=204)
