"""Platform errors; the back-end maps each to one status code (the service layer never knows HTTP)."""

from __future__ import annotations

from fovea.errors import FoveaError, InputError

__all__ = ["Conflict", "Forbidden", "InputError", "NotFound", "OAuthError", "Unauthenticated"]


class NotFound(FoveaError):
    """The object does not exist or the caller may not see it (404; existence never leaks)."""


class Forbidden(FoveaError):
    """The caller sees the object but lacks the level the action needs (403)."""


class Conflict(FoveaError):
    """The object is in use (e.g. by a pending or running process) and cannot be deleted now (409)."""


class Unauthenticated(FoveaError):
    """Missing, malformed, expired or revoked token (401)."""


class OAuthError(FoveaError):
    """RFC 6749 token-endpoint errors: `{"error": code, "error_description": ...}`."""

    def __init__(self, code: str, description: str | None = None, status: int = 400) -> None:
        super().__init__(description or code)
        self.code, self.description, self.status = code, description, status
