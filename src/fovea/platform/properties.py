"""Hyperparameter properties: seeded with stable ids (the tutorials use them), read-only."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fovea.platform.errors import NotFound
from fovea.platform.models import Property

LOSSES = "cross_entropy,softmax_cross_entropy,mean_squared_error,binary_cross_entropy,dice"
METRICS = "accuracy,mean_squared_error,mean_absolute_error,mean_relative_error,dice"
SEEDED = [
    (1, "Learning rate", "float", "0.0001", None),
    (2, "Loss function", "list", "cross_entropy", LOSSES),
    (3, "Epochs", "integer", "50", None),
    (4, "Batch size", "integer", "1", None),
    (5, "Metric", "list", "accuracy", METRICS),
    (6, "Input height", "integer", "100", None),
    (7, "Input width", "integer", "100", None),
    (8, "Training augmentations", "string", None, None),
    (9, "Validation augmentations", "string", None, None),
    (10, "Test augmentations", "string", None, None),
]


def seed_properties(db: Session) -> None:
    for pid, name, kind, default, values in SEEDED:
        if db.get(Property, pid) is None:
            db.add(Property(id=pid, name=name, type=kind, default=default, values=values))


def list_properties(db: Session, name: str | None = None) -> list[Property]:
    query = select(Property).order_by(Property.id)
    if name:  # case-insensitive substring, `_` read as a space
        query = query.where(func.lower(Property.name).contains(name.replace("_", " ").lower(), autoescape=True))
    return list(db.scalars(query))


def get_property(db: Session, property_id: int) -> Property:
    prop = db.get(Property, property_id)
    if prop is None:
        raise NotFound(f"property {property_id} not found")
    return prop
