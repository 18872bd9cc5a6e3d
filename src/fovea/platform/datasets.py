"""Datasets: uploaded DeepHealth archives, validated against their task, with sharing (backend-api.md §7)."""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fovea.core.io import Volume, read_input, sniff
from fovea.datasets import DatasetSpec, load_dataset_yaml
from fovea.datasets.files import dataset_file, file_inside
from fovea.platform.archives import extract_zip, find_dataset_yaml
from fovea.platform.db import Database
from fovea.platform.enums import TaskId
from fovea.platform.errors import Forbidden, InputError, NotFound
from fovea.platform.models import OWN, Dataset, DatasetMember, Process, Task, User
from fovea.platform.sharing import check_not_in_use, parse_members, with_members
from fovea.platform.storage import DATASETS, dataset_dir, datasets_root, new_dataset_dir

CTYPES = ("NONE", "GRAY", "RGB", "RGBA", "BGR", "HSV", "YCBCR")
MEDIA_KINDS = {"png", "jpeg", "bmp", "tiff", "dicom", "nifti"}
MAX_PROBLEMS = 50


def _level(d: Dataset, user: User) -> str | None:
    return next((m.permission for m in d.members if m.user_id == user.id), None)


def get_dataset(db: Session, user: User, dataset_id: int, *, need: str | None = None) -> Dataset:
    d = db.get(Dataset, dataset_id)
    level = _level(d, user) if d else None
    if d is None or d.single_image or (level is None and not d.public):
        raise NotFound(f"dataset {dataset_id} not found")
    if need == OWN and level != OWN:
        raise Forbidden("this action needs OWN permission on the dataset")
    return d


def process_input(db: Session, user: User, dataset_id: int | None) -> Dataset:
    """The dataset a process read, for a caller who can see the process: its single image goes with it (made for that
    process alone), while any other dataset needs the caller's own access, as on the dataset routes (404 otherwise)."""
    d = db.get(Dataset, dataset_id) if dataset_id is not None else None
    if d is None:
        raise NotFound("this process has no input images")
    return d if d.single_image else get_dataset(db, user, d.id)


def list_datasets(db: Session, user: User, task_id: int | None = None) -> list[Dataset]:
    member = select(DatasetMember.dataset_id).where(DatasetMember.user_id == user.id)
    query = select(Dataset).where(or_(Dataset.public, Dataset.id.in_(member)), Dataset.single_image.is_(False))
    if task_id is not None:
        query = query.where(Dataset.task_id == task_id)
    return list(db.scalars(query.order_by(Dataset.id)))


def yaml_path(d: Dataset, storage: Path) -> Path:
    """The dataset's YAML, resolved now and checked to be a file under the datasets folder (a row changed since the
    upload reaches nothing else); its folder is the root of the dataset's locations."""
    try:
        return file_inside(datasets_root(storage), storage / d.path, "the dataset YAML")
    except InputError:
        raise NotFound(f"the files of dataset {d.id} are missing") from None


def spec_of(d: Dataset, storage: Path) -> DatasetSpec:
    """The dataset's parsed YAML (shared, treat as read-only): parsing a few thousand entries takes a quarter second,
    and browsing asks for it once per thumbnail."""
    path = yaml_path(d, storage)
    stat = path.stat()
    return _parsed(str(path), stat.st_mtime_ns, stat.st_size, d.task_id == TaskId.SEGMENTATION)


@functools.lru_cache(maxsize=16)
def _parsed(path: str, mtime_ns: int, size: int, segmentation: bool) -> DatasetSpec:
    return load_dataset_yaml(Path(path), segmentation=segmentation)


@dataclass(frozen=True)
class NewDataset:
    """`POST datasets` (backend-api.md §7): the fields besides the archive, as sent (None when absent), each checked
    here with its own message."""

    name: object = None
    task_id: object = None
    public: object = False
    users: object = None
    ctype: object = None
    ctype_gt: object = None


def create_dataset(database: Database, user: User, fields: NewDataset, archive: bytes, storage: Path) -> Dataset:
    """Extract, validate and register an uploaded archive in a transaction of its own; the extracted folder goes
    again if anything fails, the commit included."""
    folder = None
    try:
        with database.transaction() as db:
            dataset, folder = _create_dataset(db, db.merge(user), fields, archive, storage)
            with_members(dataset)
    except Exception:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return dataset


def _create_dataset(db: Session, user: User, fields: NewDataset, archive: bytes, storage: Path) -> tuple[Dataset, Path]:
    """Extract, validate and register an uploaded archive; returns the row and its folder (removed on failure)."""
    name = fields.name
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise InputError("name must be 1-255 characters", {"fields": {"name": ["This field is required."]}})
    task_id = fields.task_id
    if not isinstance(task_id, int) or isinstance(task_id, bool) or db.get(Task, task_id) is None:
        raise InputError(f"task {task_id!r} does not exist", {"fields": {"task_id": ["Unknown task."]}})
    ctype = fields.ctype or "RGB"
    ctype_gt = fields.ctype_gt or ("GRAY" if task_id == TaskId.SEGMENTATION else None)
    for key, value in (("ctype", ctype), ("ctype_gt", ctype_gt)):
        if value is not None and value not in CTYPES:
            raise InputError(f"{key} must be one of {', '.join(CTYPES)}")
    members = parse_members(db, fields.users, user)
    folder = new_dataset_dir(storage)
    try:
        extract_zip(archive, folder)
        yaml_path = find_dataset_yaml(folder)
        spec = load_dataset_yaml(yaml_path, segmentation=task_id == TaskId.SEGMENTATION)
        problems = check_spec(spec, task_id, yaml_path.parent)
        if problems:
            raise InputError("invalid dataset", {"problems": problems[:MAX_PROBLEMS]})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    d = Dataset(
        name=name,
        path=str(yaml_path.relative_to(storage)),
        task_id=task_id,
        public=bool(fields.public),
        ctype=ctype,
        ctype_gt=ctype_gt,
        classes=",".join(spec.classes) or None,
        members=[DatasetMember(user_id=uid, permission=perm) for uid, perm in members],
    )
    db.add(d)
    db.flush()
    return d, folder


def check_spec(spec: DatasetSpec, task_id: int, root: Path) -> list[str]:
    """Problems with the files a spec names and with what its task needs (empty when all is well)."""
    problems: list[str] = []
    if task_id == TaskId.CLASSIFICATION and len(spec.classes) < 2:
        problems.append("classes: a classification dataset needs at least 2 classes")
    if task_id == TaskId.REGRESSION and not spec.features:
        problems.append("features: a regression dataset needs at least one feature")
    for i, sample in enumerate(spec.samples):
        locations = sample.location if isinstance(sample.location, list) else [sample.location]
        for location in locations:
            problems += _file_problem(root, location, f"images[{i}].location")
        if sample.label is not None:
            if task_id in (TaskId.DETECTION, TaskId.REGRESSION):
                problems.append(f"images[{i}].label: labels are not allowed for this task")
            elif task_id == TaskId.SEGMENTATION and isinstance(sample.label, str):
                problems += _file_problem(root, sample.label, f"images[{i}].label")
            elif task_id == TaskId.CLASSIFICATION and isinstance(sample.label, list) and len(sample.label) != 1:
                problems.append(f"images[{i}].label: a classification image has exactly one class")
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def _file_problem(root: Path, location: str, where: str) -> list[str]:
    try:
        path = dataset_file(root, location, where)
    except InputError as exc:
        return [str(exc)]
    with path.open("rb") as handle:
        head = handle.read(1024)
    if sniff(head, path.name) not in MEDIA_KINDS:
        return [f"{where}: {location!r} is not a PNG, JPEG, BMP, TIFF, DICOM or NIfTI file"]
    return []


def delete_dataset(database: Database, user: User, dataset_id: int, storage: Path) -> None:
    """Delete the row, then its files once the row is gone for good."""
    with database.transaction() as db:
        d = get_dataset(db, db.merge(user), dataset_id, need=OWN)
        check_not_in_use(db, Process.dataset_id, d.id, "dataset")
        db.delete(d)
    folder = dataset_folder(d, storage)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def dataset_folder(d: Dataset, storage: Path) -> Path | None:
    """datasets/<uuid>: everything stored for the dataset, to remove with it; None when the row names no such folder
    (a row changed by hand never sends a removal up the tree)."""
    parts = Path(d.path).parts
    if len(parts) < 3 or parts[0] != DATASETS or parts[1] == "..":
        return None
    return dataset_dir(storage, parts[1])


def images(spec: DatasetSpec, split: str | None, offset: int, limit: int | None) -> list[dict[str, Any]]:
    names = list(spec.split) if spec.split else ["training", "test"]
    membership = {name: set(spec.ids(name)) for name in names}
    rows = []
    for i, sample in enumerate(spec.samples):
        in_splits = [name for name in names if i in membership[name]]
        if split is not None and split not in in_splits:
            continue
        label, label_path = sample.label, None
        if isinstance(label, str):
            label, label_path = None, sample.label
        elif isinstance(label, int):
            label = [label]
        rows.append(
            {
                "id": i,
                "location": sample.location,
                "label": label,
                "label_path": label_path,
                "values": sample.values or None,
                "split": in_splits,
            }
        )
    return rows[offset : None if limit is None else offset + limit]


def first_plane(location: str | list[str]) -> str:
    """The file that stands for a sample: its location, or the first plane of a multi-plane sample."""
    return location[0] if isinstance(location, list) else location


THUMBNAIL_SIZES = range(16, 1025)


def thumbnail(d: Dataset, storage: Path, image_id: int, size: int) -> bytes:
    """A JPEG of one dataset image, its longer side at most `size` pixels (a volume shows its middle slice)."""
    if size not in THUMBNAIL_SIZES:
        raise InputError(f"size must be between {THUMBNAIL_SIZES[0]} and {THUMBNAIL_SIZES[-1]} pixels")
    spec = spec_of(d, storage)
    if not 0 <= image_id < len(spec.samples):
        raise NotFound(f"dataset {d.id} has no image {image_id}")
    location = spec.samples[image_id].location
    path = dataset_file(yaml_path(d, storage).parent, first_plane(location), f"images[{image_id}]")
    item = read_input(path)
    if isinstance(item, Volume):
        pixels = cv2.cvtColor(item.to_uint8()[item.voxels.shape[0] // 2], cv2.COLOR_GRAY2RGB)
    else:
        pixels = item.pixels
    h, w = pixels.shape[:2]
    scale = min(1.0, size / max(h, w))
    small = cv2.resize(pixels, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise InputError(f"image {image_id} cannot be shown")
    return encoded.tobytes()
