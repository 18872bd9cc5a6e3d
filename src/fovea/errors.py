"""The exception tree every layer shares; nothing here knows about HTTP.

FoveaError                  raised on purpose; its message is safe to show to a client
├── InputError              bad input from a caller (maps to 400)
│   └── LimitExceeded       input over a configured limit (maps to 413)
├── NotFound                no such object, or the caller may not see it (404)
├── Forbidden               the caller sees the object but may not do this to it (403)
├── Conflict                the object is in use and cannot change now (409)
├── Unauthenticated         missing, malformed, expired or revoked credentials (401)
├── CardError               a model card that is missing or invalid (400)
└── ExportError             an export that failed (e.g. its parity check)

Only these map to client errors: a built-in exception (a `KeyError`, an `OSError`) is a bug or an
environment fault, and the server answers it with a bare 500.
"""


class FoveaError(Exception):
    """Base of every error Fovea raises on purpose; its message is safe to show to a client."""


class InputError(FoveaError):
    """The caller's input cannot be used: corrupt, unsupported, empty or inconsistent.

    `detail` optionally says exactly what is wrong, in a JSON-safe form (e.g. a list of field problems).
    """

    def __init__(self, message: str, detail: object = None) -> None:
        super().__init__(message)
        self.detail = detail


class LimitExceeded(InputError):
    """The caller's input is over a limit (bytes, pixels, files, frames)."""


class NotFound(FoveaError):
    """The object does not exist or the caller may not see it (404; existence never leaks)."""


class Forbidden(FoveaError):
    """The caller sees the object but lacks the level the action needs (403)."""


class Conflict(FoveaError):
    """The object is in use (e.g. by a pending or running process) and cannot be deleted now (409)."""


class Unauthenticated(FoveaError):
    """Missing, malformed, expired or revoked token (401)."""


class CardError(FoveaError):
    """A model card is missing or does not validate."""


class ExportError(FoveaError):
    """A model could not be exported, or the export does not match the source model."""
