"""Resolving hyperparameters (backend-api.md §10): allowedProperties defaults, global defaults, the user's values.

The result maps each property's canonical name to its value (a string, as stored) after every check of §10: type,
the most specific `allowed_value`, task fit, required values, and the weights' static input size.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fovea.core.predictions import Task
from fovea.platform.allowed_properties import check_value, satisfies
from fovea.platform.enums import TASKS_BY_ID
from fovea.platform.errors import InputError
from fovea.platform.models import AllowedProperty, Property

TRAINING_NEEDS = ("Learning rate", "Loss function", "Epochs", "Batch size", "Metric", "Input height", "Input width")
INFERENCE_RELEVANT = ("Batch size", "Input height", "Input width", "Metric", "Test augmentations")
REGRESSION_LOSSES = {"mean_squared_error"}
REGRESSION_METRICS = {"mean_squared_error", "mean_absolute_error", "mean_relative_error"}


def normalize(name: str) -> str:
    """`" Batch_Size "` and `"batch  size"` both become `"batch size"`."""
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().lower()


def parse_user_properties(db: Session, items: Any) -> dict[int, str | None]:
    """`[{"name" | "id", "value"}]` as {property id: value}; unknown names and repeats are 400s."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise InputError("properties must be a list of {name or id, value}")
    by_name = {normalize(p.name): p for p in db.scalars(select(Property))}
    chosen: dict[int, str | None] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "value" not in item or not ("name" in item or "id" in item):
            raise InputError(f"properties[{i}]: give `name` or `id`, and `value`")
        if "id" in item:
            prop = db.get(Property, item["id"]) if isinstance(item["id"], int) else None
        else:
            prop = by_name.get(normalize(str(item["name"])))
        if prop is None:
            raise InputError(f"properties[{i}]: unknown property {item.get('name', item.get('id'))!r}")
        if prop.id in chosen:
            raise InputError(f"property '{prop.name}' is given twice")
        value = item["value"]
        chosen[prop.id] = None if value is None or str(value).strip() == "" else str(value)
    return chosen


def resolve(
    db: Session,
    *,
    model_id: int,
    dataset_id: int | None,
    task_id: int,
    user_values: dict[int, str | None],
    needs: tuple[str, ...] = TRAINING_NEEDS,
    static_size: tuple[int, int] | None = None,
) -> dict[str, str]:
    """Resolve in the documented order, then validate every value; {canonical name: value}."""
    props = {p.id: p for p in db.scalars(select(Property).order_by(Property.id))}
    general = _rows(db, model_id, None)
    specific = _rows(db, model_id, dataset_id) if dataset_id is not None else {}
    values: dict[int, str] = {}
    for rows in (general, specific):
        values.update({pid: row.default_value for pid, row in rows.items() if row.default_value is not None})
    task = TASKS_BY_ID.get(task_id)
    for pid, prop in props.items():
        # The global defaults are classification's (cross_entropy, accuracy): one that does not fit the model's task
        # is no default for it, so a regression model without allowedProperties rows resolves no Loss function
        # rather than a wrong one (inference never needs it; training then asks for it by name).
        if pid not in values and prop.default is not None and _misfit(prop.name, prop.default, task) is None:
            values[pid] = prop.default
    values.update({pid: value for pid, value in user_values.items() if value is not None})

    resolved: dict[str, str] = {}
    for pid, value in values.items():
        prop = props[pid]
        checked = check_value(prop, value)
        row = specific.get(pid) or general.get(pid)
        if row is not None and not satisfies(prop, row.allowed_value, checked):
            raise InputError(f"Invalid value for property '{prop.name}': {checked!r} is not within {row.allowed_value}")
        resolved[prop.name] = checked
    for name in needs:
        if name not in resolved:
            raise InputError(f"Property '{name}' has no value")
    for name in ("Loss function", "Metric"):
        problem = _misfit(name, resolved.get(name), task)
        if problem is not None:
            raise InputError(f"Invalid value for property '{name}': {problem}")
    if static_size is not None and "Input height" in needs:
        asked = (int(resolved["Input height"]), int(resolved["Input width"]))
        if asked != static_size:
            raise InputError(
                f"the weights take {static_size[0]}x{static_size[1]} inputs: set Input height to {static_size[0]} "
                f"and Input width to {static_size[1]}"
            )
    return resolved


def _rows(db: Session, model_id: int, dataset_id: int | None) -> dict[int, AllowedProperty]:
    query = select(AllowedProperty).where(AllowedProperty.model_id == model_id)
    query = query.where(
        AllowedProperty.dataset_id == dataset_id if dataset_id is not None else AllowedProperty.dataset_id.is_(None)
    )
    return {row.property_id: row for row in db.scalars(query)}


def _misfit(name: str, value: str | None, task: Task | None) -> str | None:
    """Why a Loss function or Metric value does not fit the task (§10, "Task fit"), or None when it does."""
    if value is None or name not in ("Loss function", "Metric"):
        return None
    if task in (Task.CLASSIFICATION, Task.MULTILABEL) and value == "dice":
        return "dice does not apply to classification"
    if task is Task.REGRESSION and name == "Loss function" and value not in REGRESSION_LOSSES:
        return "regression trains with mean_squared_error"
    if task is Task.REGRESSION and name == "Metric" and value not in REGRESSION_METRICS:
        return "regression measures mean_squared_error, mean_absolute_error or mean_relative_error"
    return None
