"""Trainings on the wire (backend-api.md §9-§11): `train`'s body and answer, `trainings`, `trainingSettings`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, StrictInt

from fovea.platform.enums import ProcessState
from fovea.platform.models import Training, TrainingSetting
from fovea.platform.trainings import ProducedWeights, TrainingOrder
from fovea.server.backend.schemas.processes import Properties, TaskManager


class TrainRequest(BaseModel):
    """`POST train`: fine-tune `weights_id` on `dataset_id`; `properties` override the resolved hyperparameters."""

    project_id: StrictInt
    dataset_id: StrictInt
    weights_id: StrictInt
    properties: Properties = None
    task_manager: TaskManager = None
    env: Any = None  # ignored (upstream's)

    def order(self) -> TrainingOrder:
        return TrainingOrder(
            project_id=self.project_id,
            dataset_id=self.dataset_id,
            weights_id=self.weights_id,
            properties=self.properties,
            task_manager=self.task_manager,
        )


class TrainingCreated(BaseModel):
    result: str = "ok"
    process_id: str
    weight_id: int  # the new weights, active once the training finishes


class TrainingItem(BaseModel):
    """One training of `GET trainings`; `modelweights_id` is the weights it produced, `celery_id` the process id."""

    id: int
    celery_id: str
    project_id: int
    modelweights_id: int | None
    created: str
    updated: str
    process_status: ProcessState

    @classmethod
    def of(cls, training: Training) -> TrainingItem:
        process = training.process
        return cls(
            id=training.id,
            celery_id=process.id,
            project_id=process.project_id,
            modelweights_id=training.weights_id,
            created=process.created.isoformat(),
            updated=process.updated.isoformat(),
            process_status=process.state,
        )


class TrainingSettingItem(BaseModel):
    """One stored setting: the value a property resolved to for this training."""

    id: int
    value: str
    training_id: int
    property_id: int

    @classmethod
    def of(cls, setting: TrainingSetting) -> TrainingSettingItem:
        return cls(id=setting.id, value=setting.value, training_id=setting.training_id, property_id=setting.property_id)


class ProducedWeightsItem(BaseModel):
    """The last element of `trainingSettings` without `property_id`: what the training produced."""

    dataset_id: int | None
    model_id: int | None
    modelweights_id: int | None

    @classmethod
    def of(cls, produced: ProducedWeights) -> ProducedWeightsItem:
        return cls(dataset_id=produced.dataset_id, model_id=produced.model_id, modelweights_id=produced.weights_id)
