"""Tasks, models and projects on the wire (backend-api.md §4-§5)."""

from __future__ import annotations

from pydantic import BaseModel

from fovea.platform.models import ArchModel, Project, Task
from fovea.server.backend.schemas.common import Member, members


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


class ProjectFields(BaseModel):
    """`POST projects` (name and task_id required), `PUT`/`PATCH projects/{id}` (what changes; `users` replaces)."""

    name: str | None = None
    task_id: int | None = None
    users: list[Member] | None = None
