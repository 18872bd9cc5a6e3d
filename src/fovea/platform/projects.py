"""Projects and their sharing rows, with the permission rules of reference/backend-api.md §1.2 and §3."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fovea.platform.auth import now
from fovea.platform.datasets import dataset_folder
from fovea.platform.db import Database
from fovea.platform.enums import UNFINISHED, ProcessState
from fovea.platform.errors import Forbidden, InputError, NotFound
from fovea.platform.models import OWN, Dataset, Process, Project, ProjectMember, Task, User
from fovea.platform.sharing import parse_members
from fovea.platform.storage import process_outputs


def permission_of(project: Project, user: User) -> str | None:
    return next((m.permission for m in project.members if m.user_id == user.id), None)


def visible_projects(db: Session, user: User) -> list[Project]:
    query = select(Project).join(ProjectMember).where(ProjectMember.user_id == user.id).order_by(Project.id)
    return list(db.scalars(query))


def get_project(db: Session, user: User, project_id: int, *, need: str | None = None) -> Project:
    """A project the caller can see (404 otherwise), with `need=OWN` enforced as 403."""
    project = db.get(Project, project_id)
    level = permission_of(project, user) if project else None
    if level is None:
        raise NotFound(f"project {project_id} not found")
    if need == OWN and level != OWN:
        raise Forbidden("this action needs OWN permission on the project")
    return project


def _members(db: Session, users: Any, creator: User | None) -> list[ProjectMember]:
    return [ProjectMember(user_id=uid, permission=perm) for uid, perm in parse_members(db, users, creator)]


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise InputError("name must be 1-255 characters", {"fields": {"name": ["This field is required."]}})
    return name


def _check_task(db: Session, task_id: Any) -> int:
    if not isinstance(task_id, int) or isinstance(task_id, bool) or db.get(Task, task_id) is None:
        raise InputError(f"task {task_id!r} does not exist", {"fields": {"task_id": ["Unknown task."]}})
    return task_id


@dataclass(frozen=True)
class ProjectFields:
    """`POST projects`, `PUT`/`PATCH projects/{id}` (backend-api.md §3): the fields as sent (None when absent), each
    checked here with its own message. `sent` names the fields the body held: an update changes only those."""

    name: object = None
    task_id: object = None
    users: object = None
    sent: frozenset[str] = frozenset()


def create_project(db: Session, user: User, fields: ProjectFields) -> Project:
    name, task_id = _check_name(fields.name), _check_task(db, fields.task_id)
    members = _members(db, fields.users, user)
    project = Project(name=name, task_id=task_id, members=members)
    db.add(project)
    db.flush()
    return project


def update_project(db: Session, user: User, project_id: int, fields: ProjectFields, *, partial: bool) -> Project:
    project = get_project(db, user, project_id, need=OWN)
    if not partial:
        missing = [k for k in ("name", "task_id") if k not in fields.sent]
        if missing:
            raise InputError(f"missing fields: {', '.join(missing)}")
    name = _check_name(fields.name) if "name" in fields.sent else project.name
    task_id = _check_task(db, fields.task_id) if "task_id" in fields.sent else project.task_id
    if task_id != project.task_id and _processes(db, project):
        raise InputError("task_id cannot change once the project has processes", {"fields": {"task_id": ["Pinned."]}})
    members = _members(db, fields.users, None) if "users" in fields.sent else None
    project.name, project.task_id = name, task_id
    if members is not None:  # replace the whole list; flush the removals before re-adding a kept user
        project.members.clear()
        db.flush()
        project.members.extend(members)
    db.flush()
    return project


def _processes(db: Session, project: Project) -> list[Process]:
    return list(db.scalars(select(Process).where(Process.project_id == project.id)))


def delete_project(database: Database, user: User, project_id: int, storage: Path) -> None:
    """Delete the project with its processes and their single-image datasets (reference §3), then, once the rows
    are gone for good, the processes' outputs and those datasets' files."""
    with database.transaction() as db:
        folders = _delete_project(db, db.merge(user), project_id, storage)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def _delete_project(db: Session, user: User, project_id: int, storage: Path) -> list[Path]:
    """Delete the rows; returns the folders to remove once the transaction commits.

    Its pending and running processes are stopped first, by updating their rows: that waits for a job's write in
    progress (jobs.progress.writing_outputs holds the row), and a job finds its row gone at its next write or
    progress line and ends there, so nothing is written into the folders once they are removed."""
    project = get_project(db, user, project_id, need=OWN)
    folders: list[Path] = []
    unfinished = Process.project_id == project.id, Process.state.in_(UNFINISHED)
    db.execute(update(Process).where(*unfinished).values(state=ProcessState.STOPPED, updated=now()))
    for process in _processes(db, project):
        folders.append(process_outputs(storage, process.id))
        dataset = db.get(Dataset, process.dataset_id) if process.dataset_id is not None else None
        if dataset is not None and dataset.single_image:
            folders += filter(None, [dataset_folder(dataset, storage)])
            db.delete(dataset)
        db.delete(process)
    db.delete(project)
    return folders
