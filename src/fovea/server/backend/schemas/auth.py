"""Accounts and tokens on the wire (backend-api.md §2-§3)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel

from fovea.platform.auth import RegistrationForm
from fovea.platform.models import User
from fovea.server.backend.schemas.common import as_fields, checked_later, required


class Registration(BaseModel):
    """`POST auth/user`: a new account (registration's username and password rules apply)."""

    model_config = required("username", "password", "email")

    username: Annotated[Any, checked_later(str)] = None
    password: Annotated[Any, checked_later(str)] = None
    email: Annotated[Any, checked_later(str)] = None
    first_name: Annotated[Any, checked_later(str | None)] = None
    last_name: Annotated[Any, checked_later(str | None)] = None

    def form(self) -> RegistrationForm:
        return as_fields(self, RegistrationForm)


class UserItem(BaseModel):
    """An account; another user's personal fields are empty unless the viewer is staff."""

    id: int
    username: str
    email: str
    first_name: str
    last_name: str

    @classmethod
    def of(cls, user: User, viewer: User | None = None) -> UserItem:
        private = viewer is None or viewer.is_staff or viewer.id == user.id
        return cls(
            id=user.id,
            username=user.username,
            email=user.email if private else "",
            first_name=user.first_name if private else "",
            last_name=user.last_name if private else "",
        )


class TokenForm(BaseModel):
    """`POST auth/token` (form-encoded): the password grant, or a refresh."""

    grant_type: str
    client_id: str
    username: str | None = None
    password: str | None = None
    refresh_token: str | None = None


class RevokeForm(BaseModel):
    """`POST auth/revoke-token` (form-encoded)."""

    token: str
    client_id: str


class Tokens(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    scope: str


class OAuthProblem(BaseModel):
    """RFC 6749's error body (`invalid_grant`, `invalid_client`, ...)."""

    error: str
    error_description: str | None = None
