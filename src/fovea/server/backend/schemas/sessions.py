"""Sessions on the wire (backend-api.md §9a): deploy weights at a capability URL, read, re-set, delete."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel

from fovea.platform.deployments import SessionOrder
from fovea.platform.models import DeployedSession
from fovea.server.backend.schemas.common import checked_later

Settings = Annotated[Any, checked_later(dict[str, Any] | None)]  # the model card's settings


class SessionCreateRequest(BaseModel):
    """`POST sessions`; every field is checked by the service, in order, with its own message."""

    modelweights_id: Annotated[Any, checked_later(int)] = None
    settings: Settings = None  # the session's defaults
    name: Annotated[Any, checked_later(str | None)] = None  # default: the weights' name
    dataset_id: Annotated[Any, checked_later(int | None)] = None  # the dataset whose image ids requests may name

    def order(self) -> SessionOrder:
        return SessionOrder(self.modelweights_id, self.settings, self.dataset_id, self.name)


class SessionPatchRequest(BaseModel):
    settings: Settings = None  # replaces the defaults; absent or null: none


class SessionItem(BaseModel):
    id: int
    token: str
    session_url: str  # absolute, no trailing slash
    modelweights_id: int
    name: str
    settings: dict[str, Any]
    dataset_id: int | None
    created: str
    state: str  # "ready" or "unloaded": whether this server holds the model loaded now
    requests: int  # requests served since it loaded

    @classmethod
    def of(cls, record: DeployedSession, token: str, base_url: str, runtime: dict[str, Any]) -> SessionItem:
        return cls(
            id=record.id,
            token=token,
            session_url=f"{base_url.rstrip('/')}/net/{token}",
            modelweights_id=record.weights_id,
            name=record.name,
            settings=json.loads(record.settings),
            dataset_id=record.dataset_id,
            created=record.created.isoformat(),
            **runtime,
        )
