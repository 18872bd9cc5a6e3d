"""allowedProperties: per-model (and per-dataset) defaults and limits of hyperparameters (backend-api.md §8)."""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from fovea.platform.errors import Forbidden, InputError, NotFound
from fovea.platform.models import AllowedProperty, ArchModel, Dataset, Property, User

_COMPARISON = re.compile(r"^\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")
POSITIVE = {"epochs", "batch size", "input height", "input width"}


@dataclass(frozen=True)
class RowFields:
    """`POST allowedProperties`, `PUT`/`PATCH allowedProperties/{id}` (backend-api.md §8): a row's fields as sent (None
    when absent), each checked by `save` with its own message. `sent` names the fields the body held: an update keeps
    the row's values of the others."""

    property_id: object = None
    model_id: object = None
    dataset_id: object = None
    allowed_value: object = None
    default_value: object = None
    sent: frozenset[str] = frozenset()


_COLUMNS = ("property_id", "model_id", "dataset_id", "allowed_value", "default_value")


def list_rows(db: Session, model_id: int, property_id: int | None, dataset_id: int | None) -> list[AllowedProperty]:
    query = select(AllowedProperty).where(AllowedProperty.model_id == model_id)
    query = query.where(
        AllowedProperty.dataset_id == dataset_id if dataset_id is not None else AllowedProperty.dataset_id.is_(None)
    )
    if property_id is not None:
        query = query.where(AllowedProperty.property_id == property_id)
    return list(db.scalars(query.order_by(AllowedProperty.id)))


def check_value(prop: Property, value: str) -> str:
    """A property value checked by type (§10, "By type"); lists come back in their canonical spelling."""
    name = prop.name.lower()

    def invalid(problem: str) -> InputError:
        return InputError(f"Invalid value for property '{prop.name}': {problem}")

    if prop.type == "integer":
        if not re.fullmatch(r"[+-]?\d+", value.strip()):
            raise invalid(f"{value!r} is not an integer")
        number = int(value)
        if name in POSITIVE and number < 1:
            raise invalid("must be at least 1")
        if name in ("input height", "input width") and number > 8192:
            raise invalid("must be at most 8192")
        return str(number)
    if prop.type == "float":
        try:
            number = float(value)
        except ValueError:
            raise invalid(f"{value!r} is not a number") from None
        if not math.isfinite(number) or (name == "learning rate" and number <= 0):
            raise invalid(f"{value!r} is out of range")
        return value.strip()
    if prop.type == "list":
        choices = {choice.lower(): choice for choice in (prop.values or "").split(",")}
        if value.strip().lower() not in choices:
            raise invalid(f"{value!r} is not one of {prop.values}")
        return choices[value.strip().lower()]
    if name.endswith("augmentations"):
        from fovea.training.augment_grammar import AugmentationError, parse

        # With the `train` extra the tree is also built once, so albumentations' own limits fail now, not in the
        # job; a serving-only install checks the grammar alone.
        with contextlib.suppress(ImportError):
            from fovea.training.augmentations import parse_augmentations as parse
        try:
            parse(value)
        except AugmentationError as exc:
            raise invalid(str(exc)) from None
    return value


def check_allowed(prop: Property, allowed: object) -> str | None:
    """`allowed_value` syntax: comparisons for numbers, a subset of `values` for lists, null for strings."""
    if allowed is None:
        return None
    if not isinstance(allowed, str):
        raise InputError(f"allowed_value must be a string such as '>0' or '[a,b]', not {type(allowed).__name__}")
    if prop.type in ("integer", "float"):
        for part in allowed.split(","):
            if not _COMPARISON.match(part):
                raise InputError(f"allowed_value {allowed!r}: use comparisons such as '>0' or '<=4096'")
        return allowed
    if prop.type == "list":
        items = [item.strip() for item in allowed.strip().strip("[]").split(",") if item.strip()]
        for item in items:
            check_value(prop, item)
        return ",".join(items)
    raise InputError(f"property {prop.name} takes no allowed_value")


def satisfies(prop: Property, allowed: str | None, value: str) -> bool:
    if allowed is None:
        return True
    if prop.type == "list":
        return value.lower() in {item.lower() for item in allowed.split(",")}
    number = float(value)
    for part in allowed.split(","):
        op, bound = _COMPARISON.match(part).groups()
        limit = float(bound)
        if not {">": number > limit, ">=": number >= limit, "<": number < limit, "<=": number <= limit}[op]:
            return False
    return True


def save(db: Session, user: User, fields: RowFields, row: AllowedProperty | None = None) -> AllowedProperty:
    """Create (row None) or update an allowedProperties row; staff only."""
    if not user.is_staff:
        raise Forbidden("only staff may change allowedProperties")
    if row is not None:  # an update: what the body left out keeps the row's value
        fields = replace(fields, **{key: getattr(row, key) for key in _COLUMNS if key not in fields.sent})
    prop = db.get(Property, fields.property_id) if isinstance(fields.property_id, int) else None
    if prop is None:
        raise InputError("property_id must name a property")
    model_id = fields.model_id
    if not isinstance(model_id, int) or db.get(ArchModel, model_id) is None:
        raise InputError("model_id must name a model")
    dataset_id = fields.dataset_id
    if dataset_id is not None and (not isinstance(dataset_id, int) or db.get(Dataset, dataset_id) is None):
        raise NotFound(f"dataset {dataset_id} not found")
    allowed = check_allowed(prop, fields.allowed_value)
    default = fields.default_value
    if default is not None:
        default = check_value(prop, str(default))
        if not satisfies(prop, allowed, default):
            raise InputError(f"default_value {default!r} does not satisfy allowed_value {allowed!r}")
    clash = list_rows(db, model_id, prop.id, dataset_id)
    if any(other.id != (row.id if row else None) for other in clash):
        raise InputError("a row for this property, model and dataset already exists")
    row = row or AllowedProperty()
    row.property_id, row.model_id, row.dataset_id = prop.id, model_id, dataset_id
    row.allowed_value, row.default_value = allowed, default
    db.add(row)
    db.flush()
    return row


def get_row(db: Session, row_id: int) -> AllowedProperty:
    row = db.get(AllowedProperty, row_id)
    if row is None:
        raise NotFound(f"allowedProperties row {row_id} not found")
    return row
