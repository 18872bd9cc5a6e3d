"""Datasets registered by URL (`POST datasets` with `path`): a zip archive, or a YAML whose files sit beside it.

Everything is fetched under the URL guard (http/https only, private addresses refused unless allowlisted, size and
time caps, redirects re-checked) and turned into the same archive an upload gives, so one validation path serves
both. A YAML's relative locations (images and masks) resolve against the YAML's own URL and are fetched when the
dataset is registered, so a process never waits on a remote server.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from pathlib import PurePosixPath
from urllib.parse import urljoin

from fovea.core.io import Limits, fetch_url
from fovea.datasets import parse_dataset_yaml
from fovea.errors import InputError, LimitExceeded

ZIP_MAGIC = b"PK\x03\x04"


def archive_from_url(url: str, limits: Limits, *, max_total_bytes: int, segmentation: bool) -> bytes:
    """The dataset at `url` as zip bytes holding one YAML and the files it names."""
    if not url.lower().startswith(("http://", "https://")):
        raise InputError("path must be an http(s) URL; server folders are registered by an administrator")
    data, name = fetch_url(url, limits=replace(limits, max_bytes=max_total_bytes))
    if data.startswith(ZIP_MAGIC):
        return data
    try:
        spec = parse_dataset_yaml(data.decode("utf-8"), segmentation=segmentation)
    except UnicodeDecodeError:
        raise InputError(f"{url} is neither a zip archive nor a dataset YAML") from None
    files = {_yaml_name(name): data}
    total = len(data)
    for sample in spec.samples:
        locations = sample.location if isinstance(sample.location, list) else [sample.location]
        if segmentation and isinstance(sample.label, str):
            locations = [*locations, sample.label]
        for location in locations:
            if location in files:
                continue
            if "://" in location or PurePosixPath(location).is_absolute() or ".." in PurePosixPath(location).parts:
                raise InputError(f"location {location!r}: use a path relative to the YAML's URL")
            files[location], _ = fetch_url(urljoin(url, location), limits=limits)
            total += len(files[location])
            if total > max_total_bytes:
                raise LimitExceeded(f"the dataset at {url} is over the limit of {max_total_bytes} bytes")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for member, content in files.items():
            archive.writestr(member, content)
    return buffer.getvalue()


def _yaml_name(name: str) -> str:
    return name if name.lower().endswith((".yml", ".yaml")) else "dataset.yml"
