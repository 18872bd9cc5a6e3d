"""Reading and writing the DeepHealth dataset YAML (reference/dataset-format-and-augmentations.md §1).

This module parses the file strictly and resolves class labels; checks that need the files themselves
(existence, formats, archive safety, absolute paths) belong to whoever stores the dataset.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fovea.core.colour import MODEL_COLOURS
from fovea.core.io.limits import DEFAULT_LIMITS, Limits, read_file
from fovea.errors import InputError
from fovea.paths import atomic_path

SPLITS = ("training", "validation", "test")
# ECVL writes the OpenCV-style `%YAML:1.2` first line, which YAML parsers reject; `%YAML 1.2` is dropped too.
_YAML_HEADER = re.compile(r"\A%YAML[: ]\d\.\d+[ \t]*\r?\n")

Location = str | list[str]  # one path, or the planes of a multi-plane sample
Label = int | list[int] | str  # class index, class indexes (multi-label) or a mask path (segmentation)


@dataclass(slots=True)
class Sample:
    location: Location
    label: Label | None = None
    values: dict[str, Any] = field(default_factory=dict)


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


# -- reading ----------------------------------------------------------------------------------------


# libyaml's parser when PyYAML was built with it: 3.5x faster than the pure-Python one (Digits: 0.23 -> 0.07 s).
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_without_aliases(text: str) -> Any:
    """Safe loading that also refuses anchors and aliases (no billion-laughs expansion).

    The events are scanned first (cheap: no nodes are built), so nothing is composed from a refused document.
    """
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise InputError("dataset YAML: anchors and aliases are not allowed")
    return yaml.load(text, Loader=_SafeLoader)


def parse_dataset_yaml(text: str, *, segmentation: bool = False) -> DatasetSpec:
    """A dataset from YAML text; a string label is a mask path when `segmentation`, else a class name."""
    text = _YAML_HEADER.sub("", text.removeprefix("\ufeff"), count=1)
    try:
        data = _load_without_aliases(text)
    except yaml.YAMLError as exc:
        raise InputError(f"dataset YAML does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise InputError("dataset YAML must be a mapping with an `images` list")
    classes = _names(data.get("classes"), "classes")
    features = _names(data.get("features"), "features")
    raw_images = data.get("images")
    if not isinstance(raw_images, list) or not raw_images:
        raise InputError("dataset YAML: `images` must be a non-empty list")
    samples = [_sample(entry, f"images[{i}]", classes, features, segmentation) for i, entry in enumerate(raw_images)]
    _check_unique_locations(samples)
    return DatasetSpec(
        name=_text(data.get("name"), "name"),
        description=_text(data.get("description"), "description"),
        classes=classes,
        features=features,
        samples=samples,
        split=_split(data.get("split"), len(samples)),
    )


def load_dataset_yaml(path: str | Path, *, segmentation: bool = False, limits: Limits = DEFAULT_LIMITS) -> DatasetSpec:
    """A dataset from its YAML file, read no further than `limits.max_bytes`."""
    name = Path(path).name
    try:
        text = read_file(path, limits, name).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"dataset YAML {name} is not UTF-8 text") from None
    return parse_dataset_yaml(text, segmentation=segmentation)


def _text(value: Any, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        raise InputError(f"dataset YAML: `{key}` must be a string")
    return str(value)


def _names(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"dataset YAML: `{key}` must be a list of names")
    names = []
    for i, name in enumerate(value):
        if isinstance(name, bool) or name is None or isinstance(name, (list, dict)):
            raise InputError(f"{key}[{i}]: {name!r} is not a valid name; quote it")
        names.append(str(name))  # `classes: [0, 1]` means the names "0" and "1"
    if len(set(names)) != len(names):
        raise InputError(f"dataset YAML: `{key}` names must be unique")
    return names


def _sample(entry: Any, where: str, classes: list[str], features: list[str], segmentation: bool) -> Sample:
    if isinstance(entry, (str, list)):
        return Sample(location=_location(entry, where))
    if not isinstance(entry, dict) or "location" not in entry:
        raise InputError(f"{where}: expected a location or a mapping with `location`")
    sample = Sample(location=_location(entry["location"], f"{where}.location"))
    if "label" in entry:
        sample.label = _label(entry["label"], classes, segmentation, f"{where}.label")
    if "values" in entry:
        sample.values = _values(entry["values"], features, f"{where}.values")
    return sample


def _location(value: Any, where: str) -> Location:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        paths = [_path(v, where) for v in value]
        if len(set(paths)) != len(paths):
            raise InputError(f"{where}: a plane repeats")
        return value
    if isinstance(value, str):
        _path(value, where)
        return value
    raise InputError(f"{where}: a location is a path or a list of plane paths")


def _path(value: str, where: str) -> str:
    """The normalised form of a location, for comparisons; relative paths must stay inside the root."""
    if not value:
        raise InputError(f"{where}: empty location")
    if "\\" in value:
        raise InputError(f"{where}: {value!r} uses a backslash; separate folders with /")
    if "://" in value or value.startswith(("/", "~")) or re.match(r"[A-Za-z]:/", value):
        return value  # URLs and absolute paths: whoever stores the dataset decides whether they are allowed
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../"):
        raise InputError(f"{where}: {value!r} points outside the dataset folder")
    return normal


def _check_unique_locations(samples: list[Sample]) -> None:
    seen: dict[tuple[str, ...], int] = {}
    for i, sample in enumerate(samples):
        planes = sample.location if isinstance(sample.location, list) else [sample.location]
        key = tuple(_path(p, f"images[{i}]") for p in planes)
        if key in seen:
            raise InputError(f"images[{i}]: location {sample.location!r} repeats images[{seen[key]}]")
        seen[key] = i


def _label(value: Any, classes: list[str], segmentation: bool, where: str) -> Label:
    if segmentation and isinstance(value, str):
        _path(value, where)
        return value
    if isinstance(value, list):
        return [_class_index(v, classes, where) for v in value]
    return _class_index(value, classes, where)


def _class_index(value: Any, classes: list[str], where: str) -> int:
    # An integer is always an index, even when class names look like numbers.
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(classes):
            raise InputError(f"{where}: class index {value} out of range ({len(classes)} classes)")
        return value
    if isinstance(value, str):
        if value not in classes:
            raise InputError(f"{where}: unknown class {value!r}")
        return classes.index(value)
    raise InputError(f"{where}: {value!r} is not a class index or name")


def _values(value: Any, features: list[str], where: str) -> dict[str, Any]:
    if isinstance(value, list):
        if len(value) > len(features):
            raise InputError(f"{where}: {len(value)} values for {len(features)} features")
        pairs = dict(zip(features, value, strict=False))
    elif isinstance(value, dict):
        unknown = sorted(set(map(str, value)) - set(features))
        if unknown:
            raise InputError(f"{where}: unknown features {unknown}")
        pairs = {str(k): v for k, v in value.items()}
    else:
        raise InputError(f"{where}: values are a list (by position) or a mapping (by feature name)")
    for key, item in pairs.items():
        if isinstance(item, (list, dict)):
            raise InputError(f"{where}.{key}: a value must be a number, a string or null")
    return pairs


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


# -- writing ----------------------------------------------------------------------------------------


class _Inline(list):
    """A list written in flow style (`[0, 1, 2]`): split ids, label lists, planes."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # the reader refuses aliases, so never write any


_Dumper.add_representer(_Inline, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def write_dataset_yaml(
    path: str | Path,
    name: str,
    classes: Sequence[str],
    images: Sequence[Sample | Location],
    split: Mapping[str, Sequence[int]] | None = None,
    description: str = "",
    *,
    features: Sequence[str] = (),
) -> Path:
    """Write a dataset YAML (long form for labelled samples); it is parsed back before it replaces `path`."""
    entries: list[Any] = []
    for image in images:
        sample = image if isinstance(image, Sample) else Sample(location=image)
        location = _Inline(sample.location) if isinstance(sample.location, list) else sample.location
        if sample.label is None and not sample.values:
            entries.append(location)
            continue
        entry: dict[str, Any] = {"location": location}
        if sample.label is not None:
            entry["label"] = _Inline(sample.label) if isinstance(sample.label, list) else sample.label
        if sample.values:
            entry["values"] = dict(sample.values)
        entries.append(entry)
    data: dict[str, Any] = {"name": name, "description": description, "classes": _Inline(classes)}
    if features:
        data["features"] = _Inline(features)
    data["images"] = entries
    if split is not None:
        data["split"] = {key: _Inline(int(i) for i in ids) for key, ids in split.items()}
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
    parse_dataset_yaml(text, segmentation=any(isinstance(s, Sample) and isinstance(s.label, str) for s in images))
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


# -- colour types (§1.5) -----------------------------------------------------------------------------

CTYPE_CHANNELS = {"GRAY": 1, "RGB": 3, "BGR": 3, "HSV": 3, "YCBCR": 3, "RGBA": 4}  # NONE: the files' own channels
SERVED_COLORS = MODEL_COLOURS  # the colours a model card can ask serving to convert an image to


def served_color(ctype: str, planes: int = 1, channels: int | None = None) -> str:
    """The model-card colour under which serving computes the input training reads as `ctype` from `planes` files.

    Serving takes one image per input and converts it to a card's colour (fovea.core.colour: RGB, BGR, GRAY, HSV,
    YCBCR). RGBA (a decoded request has no alpha) and multi-plane samples would reach a trained network as inputs no
    request can give it, so they are refused here with the reason. `channels` settles NONE (1 is GRAY, 3 is RGB).
    """
    if planes > 1:
        raise InputError(
            f"multi-plane samples ({planes} planes stacked as channels) train a network that serving cannot feed "
            "(a request carries one image)"
        )
    if ctype == "NONE" and channels in (1, 3):
        return "GRAY" if channels == 1 else "RGB"
    if ctype not in SERVED_COLORS:
        raise InputError(
            f"colour type {ctype} trains a network that serving cannot feed (model cards convert images to "
            f"{', '.join(SERVED_COLORS)}): use one of those"
        )
    return ctype
