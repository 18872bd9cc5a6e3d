"""`users` arrays: who may see (VIEW) or change (OWN) a project, dataset or weights (backend-api.md §1.2)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from fovea.platform.enums import UNFINISHED
from fovea.platform.errors import Conflict, InputError
from fovea.platform.models import OWN, VIEW, User


def parse_members(db: Session, users: Any, creator: User | None) -> list[tuple[int, str]]:
    """(user id, permission) rows from a `users` array: known users, OWN or VIEW, no repeats, one OWN at least.

    When `users` is None the creator becomes the only owner (on create); None is refused on update.
    """
    if users is None:
        if creator is None:
            raise InputError("users is required")
        return [(creator.id, OWN)]
    if not isinstance(users, list):
        raise InputError("users must be a list of {username, permission}")
    rows, seen = [], set()
    for i, row in enumerate(users):
        if not isinstance(row, dict) or row.get("permission") not in (OWN, VIEW):
            raise InputError(f"users[{i}]: permission must be OWN or VIEW")
        username = row.get("username")
        user = db.scalar(select(User).where(User.username == username)) if isinstance(username, str) else None
        if user is None:
            raise InputError(f"users[{i}]: unknown user {username!r}")
        if user.id in seen:
            raise InputError(f"users[{i}]: {username} appears twice")
        seen.add(user.id)
        rows.append((user.id, row["permission"]))
    if not any(permission == OWN for _, permission in rows):
        raise InputError("users must contain at least one OWN")
    return rows


def check_not_in_use(db: Session, column: Any, object_id: int, what: str) -> None:
    """409 while a pending or running process uses the object (`column` is Process.weights_id or .dataset_id)."""
    from fovea.platform.models import Process

    busy = db.scalar(select(Process.id).where(column == object_id, Process.state.in_(UNFINISHED)).limit(1))
    if busy is not None:
        raise Conflict(f"{what} {object_id} is used by process {busy}; stop it or wait for it to end")


Shared = TypeVar("Shared")


def with_members(owner: Shared) -> Shared:
    """`owner` (a project, dataset or weights) with its members and their usernames loaded, so it can be rendered
    after the transaction that made it has ended."""
    for member in owner.members:  # type: ignore[attr-defined]
        _ = member.user.username
    return owner
