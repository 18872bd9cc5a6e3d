"""Datasets on the wire (backend-api.md §7): listing, upload, and the images of one."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel

from fovea.platform.datasets import NewDataset
from fovea.platform.models import Dataset
from fovea.server.backend.schemas.common import Member, as_fields, checked_later, members, required


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
    """`POST datasets`: multipart with the zip as `dataset_data`, or JSON with `path` (an http(s) URL)."""

    model_config = required("name", "task_id")

    name: Annotated[Any, checked_later(str)] = None
    task_id: Annotated[Any, checked_later(int)] = None
    public: Annotated[Any, checked_later(bool)] = False
    users: Annotated[Any, checked_later(str | list[Member] | None)] = None  # a JSON string in a multipart form
    ctype: Annotated[Any, checked_later(str | None)] = None  # GRAY, RGB (default), RGBA, BGR, HSV, YCBCR or NONE
    ctype_gt: Annotated[Any, checked_later(str | None)] = None
    dataset_data: Annotated[Any, checked_later(bytes | None)] = None  # read by the route, as a file
    path: Annotated[Any, checked_later(str | None)] = None  # read by the route: the URL of a zip or of a dataset YAML

    def dataset(self) -> NewDataset:
        return as_fields(self, NewDataset)


class DatasetImage(BaseModel):
    """One sample of `GET datasets/{id}/images`."""

    id: int
    location: str | list[str]  # a list for a multi-plane sample
    label: list[Any] | None  # class indexes or names
    label_path: str | None  # a segmentation mask's location
    values: dict[str, Any] | None  # regression values by feature
    split: list[str]
