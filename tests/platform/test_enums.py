"""The platform's named constants agree with the seeded database, the core's tasks and the columns they fill."""

from __future__ import annotations

from sqlalchemy import select

from fovea.core.predictions import Task as CoreTask
from fovea.platform.bootstrap import bootstrap
from fovea.platform.config import PlatformSettings
from fovea.platform.enums import SEEDED_TASKS, TASKS_BY_ID, TRAINABLE_TASKS, ProcessState, ProcessType, TaskId
from fovea.platform.models import Process, Task


def test_every_task_id_is_a_seeded_row_and_one_core_task(tmp_path):
    db, _ = bootstrap(PlatformSettings(home=tmp_path / "home", admin_password="enums-admin-42"))
    try:
        with db.transaction() as session:
            rows = {task.id: task.name for task in session.scalars(select(Task))}
    finally:
        db.dispose()
    assert rows == {int(task_id): name for task_id, name in SEEDED_TASKS.items()} and set(rows) == set(TaskId)
    assert sorted(TASKS_BY_ID) == sorted(TaskId) and set(TASKS_BY_ID.values()) == set(CoreTask)
    assert all(TaskId(task_id).task is task for task_id, task in TASKS_BY_ID.items())
    assert TaskId.DETECTION not in TRAINABLE_TASKS and set(TaskId) > TRAINABLE_TASKS


def test_the_states_and_types_fit_their_columns():
    for enum, column in ((ProcessState, Process.state), (ProcessType, Process.process_type)):
        assert all(len(member.value) <= column.type.length for member in enum)
    assert ProcessType.INFERENCE == "testing"  # the reference API's word, stored and sent as such
