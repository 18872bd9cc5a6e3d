"""Platform errors: the shared tree's (re-exported for the services) plus the OAuth token endpoint's own."""

from __future__ import annotations

from fovea.errors import Conflict, Forbidden, FoveaError, InputError, NotFound, Unauthenticated

__all__ = ["Conflict", "Forbidden", "InputError", "NotFound", "OAuthError", "Unauthenticated"]


class OAuthError(FoveaError):
    """RFC 6749 token-endpoint errors: `{"error": code, "error_description": ...}`."""

    def __init__(self, code: str, description: str | None = None, status: int = 400) -> None:
        super().__init__(description or code)
        self.code, self.description, self.status = code, description, status
