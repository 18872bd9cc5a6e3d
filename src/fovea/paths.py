"""Where Fovea keeps its files: FOVEA_HOME (default ~/.fovea)."""

from __future__ import annotations

import os
from pathlib import Path


def fovea_home() -> Path:
    return Path(os.environ.get("FOVEA_HOME") or Path.home() / ".fovea").expanduser()
