"""Sessions as the back-end manages them: deploy weights at a capability URL (backend-api.md §9a)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fovea.core.card import ModelCard
from fovea.core.settings import resolve_settings
from fovea.platform.auth import now
from fovea.platform.datasets import get_dataset
from fovea.platform.db import Database
from fovea.platform.errors import InputError, NotFound
from fovea.platform.models import DeployedSession, User, Weights
from fovea.platform.security import token_hash
from fovea.platform.weights import get_weights

_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def server_secret(home: Path) -> bytes:
    """A per-installation secret (created on first use) from which session tokens are derived."""
    path = home / "secret.key"
    if not path.exists():
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


def derive_token(secret: bytes, nonce: str) -> str:
    digest = hmac.new(secret, f"session:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def card_of(weights: Weights) -> ModelCard:
    if weights.card is None:
        raise InputError(f"weights {weights.id} have no model card; deploy weights uploaded with one")
    return ModelCard.from_json(weights.card)


def _settings(card: ModelCard, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("settings must be an object")
    resolved = resolve_settings(card, value)  # unknown keys and bad values -> 400 naming the acceptable keys
    return {key: resolved[key] for key in value}


@dataclass(frozen=True)
class SessionOrder:
    """What `POST sessions` asks for, as sent: each value is checked here, in order, with its own message (§9a)."""

    weights_id: object
    settings: object = None  # the model card's settings, as the session's defaults
    dataset_id: object = None  # the dataset whose image ids the session's requests may name
    name: object = None  # default: the weights' name


def create(db: Session, user: User, order: SessionOrder, secret: bytes) -> tuple[DeployedSession, str]:
    weights_id = order.weights_id
    if not isinstance(weights_id, int) or isinstance(weights_id, bool):
        raise InputError("modelweights_id is required and must be an integer")
    weights = get_weights(db, user, weights_id)
    if not weights.is_active:
        raise InputError(f"Weights {weights.id} are not ready")
    settings = _settings(card_of(weights), order.settings)
    dataset_id = order.dataset_id
    if dataset_id is not None:  # the dataset whose image ids the session's requests may name
        if not isinstance(dataset_id, int) or isinstance(dataset_id, bool):
            raise InputError("dataset_id must be an integer")
        get_dataset(db, user, dataset_id)
    name = order.name or weights.name
    if not isinstance(name, str):
        raise InputError("name must be a string")
    nonce = secrets.token_hex(16)
    token = derive_token(secret, nonce)
    record = DeployedSession(
        token_hash=token_hash(token),
        nonce=nonce,
        user_id=user.id,
        weights_id=weights.id,
        name=_NAME.sub("-", name).strip("-")[:200] or "model",
        settings=json.dumps(settings),
        dataset_id=dataset_id,
        created=now(),
    )
    db.add(record)
    db.flush()
    return record, token


def owned(db: Session, user: User, session_id: int) -> DeployedSession:
    record = db.get(DeployedSession, session_id)
    if record is None or record.user_id != user.id:
        raise NotFound(f"session {session_id} not found")
    return record


def list_owned(db: Session, user: User) -> list[DeployedSession]:
    query = select(DeployedSession).where(DeployedSession.user_id == user.id).order_by(DeployedSession.id)
    return list(db.scalars(query))


def update_settings(db: Session, user: User, session_id: int, settings: object) -> DeployedSession:
    """The session's default settings replaced by `settings` (as sent; None: no defaults)."""
    record = owned(db, user, session_id)
    weights = db.get(Weights, record.weights_id)
    record.settings = json.dumps(_settings(card_of(weights), settings))
    return record


def delete(database: Database, user: User, session_id: int) -> None:
    """Delete the record in a transaction of its own: once this returns, no process can load the session again,
    so the caller may unload it (an unload before the commit could be undone by a request reloading it)."""
    with database.transaction() as db:
        db.delete(owned(db, db.merge(user), session_id))


def by_token(db: Session, token: str) -> tuple[DeployedSession, Weights] | None:
    """The session a URL token names, while its owner may still use the weights; else None (a 404)."""
    record = db.scalar(select(DeployedSession).where(DeployedSession.token_hash == token_hash(token)))
    if record is None:
        return None
    owner = db.get(User, record.user_id)
    try:
        weights = get_weights(db, owner, record.weights_id)
    except NotFound:
        return None
    return (record, weights) if weights.is_active and owner.is_active else None
