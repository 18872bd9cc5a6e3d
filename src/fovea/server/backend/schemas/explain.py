"""`explain` on the wire: `inferenceSingle`'s body plus the class to explain; the answer is a PNG."""

from __future__ import annotations

from typing import Annotated, Any

from fovea.server.backend.schemas.common import checked_later
from fovea.server.backend.schemas.processes import InferenceSingleRequest


class ExplainRequest(InferenceSingleRequest):
    # default: the predicted class; an integer from 0, checked after the caller's access to the weights
    class_index: Annotated[Any, checked_later(int | None)] = None
