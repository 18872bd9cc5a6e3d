"""Reading and writing the DeepHealth dataset YAML (reference/dataset-format-and-augmentations.md §1).

This module parses the file strictly and resolves class labels; checks that need the files themselves
(existence, formats, archive safety) belong to whoever stores the dataset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fovea.errors import InputError

SPLITS = ("training", "validation", "test")
_OPENCV_HEADER = re.compile(r"^%YAML[: ]\d\.\d+\s*\n")


@dataclass(slots=True)
class Sample:
    location: str | list[str]  # one path, or the planes of a multi-plane sample
    label: int | list[int] | str | None = None  # class index, class indexes (multi-label) or a mask path
    values: dict[str, float | None] = field(default_factory=dict)


@dataclass(slots=True)
class DatasetSpec:
    name: str
    samples: list[Sample]
    classes: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    split: dict[str, list[int]] = field(default_factory=dict)
    description: str = ""

    def ids(self, split: str) -> list[int]:
        """Image ids of a split; without any `split` key, training and test are every image."""
        if not self.split:
            return [] if split == "validation" else list(range(len(self.samples)))
        return list(self.split.get(split, []))


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loading that also refuses anchors and aliases (no billion-laughs expansion)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise InputError("dataset YAML: anchors and aliases are not allowed")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise InputError("dataset YAML: anchors and aliases are not allowed")
        return super().compose_node(parent, index)


def parse_dataset_yaml(text: str, *, segmentation: bool = False) -> DatasetSpec:
    text = _OPENCV_HEADER.sub("", text, count=1)
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as exc:
        raise InputError(f"dataset YAML does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise InputError("dataset YAML must be a mapping with an `images` list")
    classes = _names(data.get("classes") or [], "classes")
    features = _names(data.get("features") or [], "features")
    raw_images = data.get("images")
    if not isinstance(raw_images, list) or not raw_images:
        raise InputError("dataset YAML: `images` must be a non-empty list")
    samples = [_sample(entry, i, classes, features, segmentation) for i, entry in enumerate(raw_images)]
    split = _split(data.get("split"), len(samples))
    return DatasetSpec(
        name=str(data.get("name") or ""),
        description=str(data.get("description") or ""),
        classes=classes,
        features=features,
        samples=samples,
        split=split,
    )


def load_dataset_yaml(path: str | Path, *, segmentation: bool = False) -> DatasetSpec:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read dataset YAML {path}: {exc}") from None
    return parse_dataset_yaml(text, segmentation=segmentation)


def write_dataset_yaml(path: str | Path, spec: DatasetSpec) -> Path:
    images = []
    for sample in spec.samples:
        entry: dict[str, Any] = {"location": sample.location}
        if sample.label is not None:
            entry["label"] = sample.label
        if sample.values:
            entry["values"] = sample.values
        images.append(entry)
    data: dict[str, Any] = {"name": spec.name, "description": spec.description}
    if spec.classes:
        data["classes"] = spec.classes
    if spec.features:
        data["features"] = spec.features
    data["images"] = images
    if spec.split:
        data["split"] = spec.split
    path = Path(path)
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120))
    return path


def _names(value: Any, key: str) -> list[str]:
    if not isinstance(value, list):
        raise InputError(f"dataset YAML: `{key}` must be a list of names")
    names = []
    for i, name in enumerate(value):
        if isinstance(name, bool) or name is None or isinstance(name, (list, dict)):
            raise InputError(f"{key}[{i}]: {name!r} is not a valid name; quote it")
        names.append(str(name))
    if len(set(names)) != len(names):
        raise InputError(f"dataset YAML: `{key}` names must be unique")
    return names


def _sample(entry: Any, index: int, classes: list[str], features: list[str], segmentation: bool) -> Sample:
    where = f"images[{index}]"
    if isinstance(entry, (str, list)):
        return Sample(location=_location(entry, where))
    if not isinstance(entry, dict) or "location" not in entry:
        raise InputError(f"{where}: expected a location or a mapping with `location`")
    sample = Sample(location=_location(entry["location"], f"{where}.location"))
    if "label" in entry:
        sample.label = _label(entry["label"], classes, segmentation, f"{where}.label")
    values = entry.get("values")
    if isinstance(values, list):
        if len(values) > len(features):
            raise InputError(f"{where}.values: {len(values)} values for {len(features)} features")
        sample.values = dict(zip(features, values, strict=False))
    elif isinstance(values, dict):
        unknown = set(values) - set(features)
        if unknown:
            raise InputError(f"{where}.values: unknown features {sorted(unknown)}")
        sample.values = dict(values)
    return sample


def _location(value: Any, where: str) -> str | list[str]:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, str) and value:
        return value
    raise InputError(f"{where}: a location is a path or a list of plane paths")


def _label(value: Any, classes: list[str], segmentation: bool, where: str) -> int | list[int] | str:
    if isinstance(value, str) and (segmentation or value not in classes):
        if segmentation:
            return value
        raise InputError(f"{where}: unknown class {value!r}")
    if isinstance(value, list):
        return [_class_index(v, classes, where) for v in value]
    return _class_index(value, classes, where)


def _class_index(value: Any, classes: list[str], where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(f"{where}: {value!r} is not a class index or name")
    if isinstance(value, int):
        if not 0 <= value < len(classes):
            raise InputError(f"{where}: class index {value} out of range ({len(classes)} classes)")
        return value
    if value not in classes:
        raise InputError(f"{where}: unknown class {value!r}")
    return classes.index(value)


def _split(value: Any, count: int) -> dict[str, list[int]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("dataset YAML: `split` must map split names to lists of image ids")
    split = {}
    for name, ids in value.items():
        if not isinstance(ids, list):
            raise InputError(f"split.{name}: expected a list of image ids")
        for i, image_id in enumerate(ids):
            if isinstance(image_id, bool) or not isinstance(image_id, int) or not 0 <= image_id < count:
                raise InputError(f"split.{name}[{i}]: index {image_id!r} out of range ({count} images)")
        if len(set(ids)) != len(ids):
            raise InputError(f"split.{name}: an image id repeats")
        split[str(name)] = list(ids)
    return split
