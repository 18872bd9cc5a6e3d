"""Safe extraction of uploaded dataset archives (dataset-format-and-augmentations.md §1.6, rule 1)."""

from __future__ import annotations

import stat
import zipfile
import zlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path, PurePosixPath

from fovea.errors import InputError, LimitExceeded


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_members: int = 100_000
    max_uncompressed: int = 8 * 1024**3
    max_ratio: float = 200.0  # uncompressed / compressed, per member (zip bombs)


def extract_zip(data: bytes, destination: Path, limits: ArchiveLimits = ArchiveLimits()) -> None:
    """Check every member first, then extract into `destination` (which must not exist yet)."""
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except zipfile.BadZipFile:
        raise InputError("dataset_data is not a zip archive") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise LimitExceeded(f"the archive has {len(members)} members, over the limit of {limits.max_members}")
        total = 0
        for member in members:
            _check_member(member, limits)
            total += member.file_size
        if total > limits.max_uncompressed:
            raise LimitExceeded(f"the archive expands to {total} bytes, over the limit of {limits.max_uncompressed}")
        destination.mkdir(parents=True)
        for member in members:
            target = destination / PurePosixPath(member.filename)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            _extract_member(archive, member, target)


def _extract_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> None:
    """Copy one member, refusing one whose content is not what its headers declare.

    zipfile stops reading at the declared size, so a member that inflates to more is cut there and then fails its
    CRC; one that inflates to less ends early. Either way it is the client's archive that is wrong (400)."""
    try:
        with archive.open(member) as source, target.open("wb") as sink:
            written = 0
            while chunk := source.read(1 << 20):
                written += len(chunk)
                sink.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise InputError(f"archive member {member.filename!r} is corrupt ({exc})") from None
    if written != member.file_size:
        raise InputError(
            f"archive member {member.filename!r} holds {written} bytes, not the {member.file_size} it declares"
        )


def _check_member(member: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    name = member.filename
    path = PurePosixPath(name)
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InputError(f"unsafe archive member {name!r}: absolute path, drive letter or backslash")
    if ".." in path.parts:
        raise InputError(f"unsafe archive member {name!r}: '..' is not allowed")
    kind = stat.S_IFMT(member.external_attr >> 16)  # 0 when the archiver recorded no Unix file type
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise InputError(f"unsafe archive member {name!r}: links and device entries are not allowed")
    if member.flag_bits & 0x1:
        raise InputError(f"archive member {name!r} is encrypted")
    if member.compress_size and member.file_size / member.compress_size > limits.max_ratio:
        raise LimitExceeded(f"archive member {name!r} has a suspicious compression ratio")


def find_dataset_yaml(root: Path) -> Path:
    """The one *.yml/*.yaml at the root, or inside the single top-level folder."""
    candidates = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".yml", ".yaml")]
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith("__MACOSX")]
    if not candidates and len(folders) == 1:
        candidates = [p for p in folders[0].iterdir() if p.is_file() and p.suffix.lower() in (".yml", ".yaml")]
    if len(candidates) != 1:
        found = "no" if not candidates else f"{len(candidates)}"
        raise InputError(
            f"the archive must hold exactly one dataset YAML at its root or in its one folder ({found} found)"
        )
    return candidates[0]
