"""The read-mostly catalog: tasks and model families."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fovea.platform.enums import SEEDED_TASKS
from fovea.platform.errors import InputError, NotFound
from fovea.platform.models import ArchModel, Task


def list_tasks(db: Session) -> list[Task]:
    return list(db.scalars(select(Task).order_by(Task.id)))


def get_task(db: Session, task_id: int) -> Task:
    task = db.get(Task, task_id)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return task


def list_models(db: Session, task_id: int | None = None) -> list[ArchModel]:
    query = select(ArchModel).order_by(ArchModel.id)
    if task_id is not None:
        query = query.where(ArchModel.task_id == task_id)
    return list(db.scalars(query))


def get_model(db: Session, model_id: int) -> ArchModel:
    model = db.get(ArchModel, model_id)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    return model


def create_model(db: Session, name: Any, task_id: Any) -> ArchModel:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise InputError("name must be 1-255 characters", {"fields": {"name": ["This field is required."]}})
    if not isinstance(task_id, int) or isinstance(task_id, bool) or db.get(Task, task_id) is None:
        raise InputError(f"task {task_id!r} does not exist", {"fields": {"task_id": ["Unknown task."]}})
    key = name.strip().lower()
    if db.scalar(select(ArchModel).where(ArchModel.name_key == key, ArchModel.task_id == task_id)):
        raise InputError(f"a model named {name!r} already exists for this task")
    model = ArchModel(name=name.strip(), name_key=key, task_id=task_id)
    db.add(model)
    db.flush()
    return model


def seed_tasks(db: Session) -> None:
    for task_id, name in SEEDED_TASKS.items():  # ids are stable: the tutorials use them (backend-api.md §12)
        if db.get(Task, int(task_id)) is None:
            db.add(Task(id=int(task_id), name=name))
