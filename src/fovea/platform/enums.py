"""The platform's named constants: task ids, process states and process types.

They are `IntEnum`/`StrEnum`s, so each member equals the value stored in the database and sent on the wire
(`TaskId.SEGMENTATION == 2`, `ProcessState.RUNNING == "running"`): naming them changes no row and no answer.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from fovea.core.predictions import Task


class TaskId(IntEnum):
    """The seeded tasks' ids; stable, since the tutorials use them (reference/backend-api.md §12)."""

    CLASSIFICATION = 1
    SEGMENTATION = 2
    DETECTION = 3
    MULTILABEL = 4
    REGRESSION = 5

    @property
    def task(self) -> Task:
        """The core's task for this id."""
        return TASKS_BY_ID[self]


# The core's task for each id; `.get(task_id)` is None for an id no seeded task has.
TASKS_BY_ID: dict[int, Task] = {
    TaskId.CLASSIFICATION: Task.CLASSIFICATION,
    TaskId.SEGMENTATION: Task.SEGMENTATION,
    TaskId.DETECTION: Task.DETECTION,
    TaskId.MULTILABEL: Task.MULTILABEL,
    TaskId.REGRESSION: Task.REGRESSION,
}

# What the seeded `tasks` rows are called.
SEEDED_TASKS: dict[TaskId, str] = {
    TaskId.CLASSIFICATION: "Classification",
    TaskId.SEGMENTATION: "Segmentation",
    TaskId.DETECTION: "Detection",
    TaskId.MULTILABEL: "Multi-label classification",
    TaskId.REGRESSION: "Regression",
}

# Tasks the trainer can fine-tune: there is no detection trainer.
TRAINABLE_TASKS = frozenset({TaskId.CLASSIFICATION, TaskId.SEGMENTATION, TaskId.MULTILABEL, TaskId.REGRESSION})


class ProcessState(StrEnum):
    """Where a process (or a weights download) is in its life: pending -> running -> one final state."""

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"


# States a process can still leave; the others are final.
UNFINISHED = (ProcessState.PENDING, ProcessState.RUNNING)


class ProcessType(StrEnum):
    """A process's `process_type`; an inference is stored (and sent) as "testing", the reference API's word."""

    TRAINING = "training"
    INFERENCE = "testing"
