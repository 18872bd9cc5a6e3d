"""Where Fovea keeps its files (FOVEA_HOME, default ~/.fovea), who may read them, and how it replaces a file
atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fovea_home() -> Path:
    return Path(os.environ.get("FOVEA_HOME") or Path.home() / ".fovea").expanduser()


PRIVATE_UMASK = 0o077  # files 0600, folders 0700: uploads, weights and the database belong to Fovea's account only


def keep_private(*folders: Path) -> None:
    """From now on, files and folders this process creates are its account's only; `folders` (created if missing,
    or made by an older version under a laxer umask) become 0700 too.

    A process-wide umask, set by the entry points that write under FOVEA_HOME (bootstrap, the Celery worker), so
    every writer is covered, and the worker processes they spawn inherit it.
    """
    os.umask(PRIVATE_UMASK)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)


def make_private_file(path: Path) -> None:
    """A file that may predate `keep_private` (a database created by an older version): 0600 when it exists."""
    if path.exists():
        path.chmod(0o600)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it only when the block succeeds and removed otherwise.

    Readers therefore see the old file or the complete new one, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
