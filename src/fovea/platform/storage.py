"""The storage folder's layout: the one place that knows where each kind of file lives under it.

    weights/<weights id>.onnx      registered, downloaded and trained weights
    datasets/<folder>/...          an uploaded dataset (its YAML and files), or one inferenceSingle image
    processes/<process id>/...     an inference's outputs (outputs.json, masks)
    videos/<video id>.<ext>        videos uploaded for sessions

Every function takes the storage root (PlatformSettings.storage_dir), so jobs in other processes, which get the
root as a string, find the same files.
"""

from __future__ import annotations

import uuid
from pathlib import Path

DATASETS = "datasets"


def weights_file(storage: Path, weights_id: int) -> Path:
    return storage / "weights" / f"{weights_id}.onnx"


def datasets_root(storage: Path) -> Path:
    return storage / DATASETS


def dataset_dir(storage: Path, name: str) -> Path:
    """One dataset's folder, by the folder name its row's path starts with."""
    return storage / DATASETS / name


def new_dataset_dir(storage: Path) -> Path:
    """A fresh, not yet created, dataset folder (named by a random hex token)."""
    return dataset_dir(storage, uuid.uuid4().hex)


def process_outputs(storage: Path, process_id: str) -> Path:
    return storage / "processes" / process_id


def videos_dir(storage: Path) -> Path:
    return storage / "videos"
