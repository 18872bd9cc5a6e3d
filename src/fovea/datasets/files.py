"""The files a dataset names, found inside its folder at the moment they are read.

A location is checked twice: as text when a dataset is stored (relative, no URL, no way up), and again, resolved
with every link followed, each time a file is read, so that a row, a YAML or a link changed since then still cannot
reach a file outside the folder, nor a device such as `/dev/zero`. Reads stop at the size limit.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from fovea.core.io.limits import DEFAULT_LIMITS, Limits, read_file
from fovea.errors import InputError

# `http:`, `file:`, `C:` and the like: a URL or a drive, never a file of the dataset.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def location_problem(location: str) -> str | None:
    """Why `location` cannot name a file of a stored dataset (a phrase that follows the location in a message), or
    None when it is a relative path that stays inside."""
    if _SCHEME.match(location) or "://" in location:
        return "is a URL or a drive; put the file in the archive and name it by its path relative to the YAML"
    if location.startswith(("/", "~")):
        return "is an absolute path; put the file in the archive and name it by its path relative to the YAML"
    normal = posixpath.normpath(location)
    if normal == ".." or normal.startswith("../"):
        return "leaves the dataset folder"
    return None


def file_inside(folder: Path, path: str | Path, what: str) -> Path:
    """`folder / path` resolved now (links followed): a regular file inside `folder`, or an InputError about `what`."""
    base = folder.resolve()
    try:
        resolved = (base / path).resolve()
    except (OSError, RuntimeError):  # a link loop (RuntimeError before Python 3.13), or an unreadable folder
        raise InputError(f"{what} cannot be resolved") from None
    if not resolved.is_relative_to(base):
        raise InputError(f"{what} leaves the dataset folder")
    if not resolved.is_file():
        raise InputError(f"{what} does not exist as a regular file")
    return resolved


def dataset_file(root: Path, location: str, where: str) -> Path:
    """The file a location names under the dataset root `root`; `where` names the entry in errors (`images[3]`)."""
    what = f"{where}: {location!r}"
    problem = location_problem(location)
    if problem is not None:
        raise InputError(f"{what} {problem}")
    return file_inside(root, location, what)


def read_dataset_file(root: Path, location: str, where: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The bytes of a dataset file, checked as `dataset_file` does, never more than `limits.max_bytes`."""
    return read_file(dataset_file(root, location, where), limits, name=Path(location).name)
