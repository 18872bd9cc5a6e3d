"""Inference processes on the wire (backend-api.md §9): launch bodies, listings, status, outputs, stop."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, RootModel, StrictInt

from fovea.platform.enums import ProcessState, ProcessType
from fovea.platform.models import Process
from fovea.platform.processes import InferenceOrder
from fovea.server.backend.schemas.common import checked_later


class PropertyValue(BaseModel):
    """One hyperparameter override: `name` or `id` of a property, and its value (§10)."""

    name: str | None = None
    id: int | None = None
    value: Any


Properties = Annotated[Any, checked_later(list[PropertyValue] | None)]
TaskManager = Annotated[Any, checked_later(str | None)]  # absent or "CELERY"


class InferenceSingleRequest(BaseModel):
    """`POST inferenceSingle`: one image, by URL or as a data URL (exactly one of the two)."""

    project_id: StrictInt
    modelweights_id: StrictInt
    image_url: Annotated[Any, checked_later(str | None)] = None
    image_data: Annotated[Any, checked_later(str | None)] = None  # data:<mime>;base64,<payload>
    properties: Properties = None
    settings: Annotated[Any, checked_later(dict[str, Any] | None)] = None  # the card's settings (conf_thres...)
    task_manager: TaskManager = None
    env: Any = None  # ignored (upstream's)

    def order(self) -> InferenceOrder:
        return InferenceOrder(
            project_id=self.project_id,
            weights_id=self.modelweights_id,
            properties=self.properties,
            settings=self.settings,
            task_manager=self.task_manager,
            image_url=self.image_url,
            image_data=self.image_data,
        )


class InferenceRequest(BaseModel):
    """`POST inference`: run weights on a dataset's test split."""

    project_id: StrictInt
    modelweights_id: StrictInt
    dataset_id: StrictInt
    properties: Properties = None
    settings: Annotated[Any, checked_later(dict[str, Any] | None)] = None
    task_manager: TaskManager = None
    env: Any = None

    def order(self) -> InferenceOrder:
        return InferenceOrder(
            project_id=self.project_id,
            weights_id=self.modelweights_id,
            dataset_id=self.dataset_id,
            properties=self.properties,
            settings=self.settings,
            task_manager=self.task_manager,
        )


class StopRequest(BaseModel):
    process_id: Annotated[Any, checked_later(str)]  # a UUID; checked (400) when the process is looked up


class ProcessCreated(BaseModel):
    result: str = "ok"
    process_id: str


class ProcessItem(BaseModel):
    """One inference of `GET inference` (`celery_id` keeps its upstream name and holds the process id)."""

    id: str
    project_id: int
    modelweights_id: int | None
    dataset_id: int | None
    celery_id: str
    created: str
    updated: str
    process_status: ProcessState

    @classmethod
    def of(cls, process: Process) -> ProcessItem:
        return cls(
            id=process.id,
            project_id=process.project_id,
            modelweights_id=process.weights_id,
            dataset_id=process.dataset_id,
            celery_id=process.id,
            created=process.created.isoformat(),
            updated=process.updated.isoformat(),
            process_status=process.state,
        )


class ProcessStatus(BaseModel):
    process_type: ProcessType
    process_status: ProcessState
    process_data: str | list[str]  # the last progress line ("" before the first), or all of them with full=true


class StatusEntry(BaseModel):
    result: str  # "ok", or "error" when the process failed
    status: ProcessStatus


class StatusNotFound(BaseModel):
    result: str = "error"
    error: str


class ProcessResult(BaseModel):
    """`stopProcess`'s answer, and `output`'s while the process runs or when it cannot have outputs."""

    result: str


class OutputRows(BaseModel):
    """`output` of a finished inference: [image name, value] per test image; the value's form depends on the task."""

    outputs: list[tuple[str, str]]


class CanonicalPredictions(BaseModel):
    """`output?format=json`: the predictions as the inference stored them, and the class names."""

    predictions: list[dict[str, Any]]
    classes: list[str]


class FormattedOutput(RootModel[dict[str, Any] | list[Any]]):
    """`output?format=aicoco|supervisely|coco`: that format's document, as the inference core's formatters write it."""


Output = OutputRows | CanonicalPredictions | FormattedOutput | ProcessResult
