"""Tasks, models and projects on the wire (backend-api.md §4-§5)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel

from fovea.platform.models import ArchModel, Project, Task
from fovea.platform.projects import ProjectFields
from fovea.server.backend.schemas.common import Member, as_fields, checked_later, members


class TaskItem(BaseModel):
    id: int
    name: str

    @classmethod
    def of(cls, task: Task) -> TaskItem:
        return cls(id=task.id, name=task.name)


class ModelItem(BaseModel):
    id: int
    name: str
    task_id: int

    @classmethod
    def of(cls, model: ArchModel) -> ModelItem:
        return cls(id=model.id, name=model.name, task_id=model.task_id)


class NewModel(BaseModel):
    """`POST models`."""

    name: str
    task_id: int


class ProjectItem(BaseModel):
    id: int
    name: str
    task_id: int
    users: list[Member]

    @classmethod
    def of(cls, project: Project) -> ProjectItem:
        return cls(id=project.id, name=project.name, task_id=project.task_id, users=members(project.members))


class ProjectRequest(BaseModel):
    """`POST projects` (name and task_id required), `PUT`/`PATCH projects/{id}` (what changes; `users` replaces)."""

    name: Annotated[Any, checked_later(str | None)] = None
    task_id: Annotated[Any, checked_later(int | None)] = None
    users: Annotated[Any, checked_later(list[Member] | None)] = None

    def fields(self) -> ProjectFields:
        return as_fields(self, ProjectFields)
