"""Datasets on the wire (backend-api.md §7): listing, upload, and the images of one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from fovea.platform.models import Dataset
from fovea.server.backend.schemas.common import Member, members


class DatasetItem(BaseModel):
    id: int
    name: str
    path: str  # the YAML, relative to the storage folder
    task_id: int
    users: list[Member]
    public: bool
    ctype: str
    ctype_gt: str | None
    classes: str | None  # comma-separated

    @classmethod
    def of(cls, d: Dataset) -> DatasetItem:
        return cls(
            id=d.id,
            name=d.name,
            path=d.path,
            task_id=d.task_id,
            users=members(d.members),
            public=d.public,
            ctype=d.ctype,
            ctype_gt=d.ctype_gt,
            classes=d.classes,
        )


class DatasetUpload(BaseModel):
    """`POST datasets`: multipart with the zip as `dataset_data`, or JSON with `dataset_url`."""

    name: str
    task_id: int
    public: bool = False
    users: str | list[Member] | None = None  # a JSON string in a multipart form
    ctype: str | None = None  # GRAY, RGB (default), RGBA, BGR, HSV, YCBCR or NONE
    ctype_gt: str | None = None
    dataset_data: bytes | None = None
    dataset_url: str | None = None


class DatasetImage(BaseModel):
    """One sample of `GET datasets/{id}/images`."""

    id: int
    location: str | list[str]  # a list for a multi-plane sample
    label: list[Any] | None  # class indexes or names
    label_path: str | None  # a segmentation mask's location
    values: dict[str, Any] | None  # regression values by feature
    split: list[str]
