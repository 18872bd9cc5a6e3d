"""The exception tree every layer shares; nothing here knows about HTTP.

FoveaError
├── InputError          bad input from a caller (maps to 400)
│   └── LimitExceeded   input over a configured limit (maps to 413)
├── CardError           a model card that is missing or invalid
└── ExportError         an export that failed (e.g. its parity check)
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


class CardError(FoveaError):
    """A model card is missing or does not validate."""


class ExportError(FoveaError):
    """A model could not be exported, or the export does not match the source model."""
