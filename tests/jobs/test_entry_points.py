"""The job entry points as a worker calls them (`run_inference`, `run_training`): a real platform home, real files.

Each is called in this process with the process id, the database URL and the storage folder, exactly as the local
pool and Celery call it; the outcome is read back from the database and the storage folder.
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from fovea.jobs.inference import run_inference
from fovea.jobs.training import run_training
from fovea.platform import processes, projects
from fovea.platform.auth import now
from fovea.platform.bootstrap import bootstrap, seed_demo
from fovea.platform.config import PlatformSettings
from fovea.platform.datasets import spec_of
from fovea.platform.enums import ProcessState, ProcessType, TaskId
from fovea.platform.models import Dataset, Process, ProgressLine, Training, User, Weights
from fovea.platform.storage import process_outputs


@pytest.fixture
def platform(tmp_path, zoo_dir):
    """A bootstrapped home with the demo catalog (LeNet weights, the Digits dataset) and the admin's project."""
    settings = PlatformSettings(home=tmp_path / "home", admin_password="jobs-admin-42")
    db, _ = bootstrap(settings)
    seed_demo(settings, db, zoo_dir)
    with db.transaction() as session:
        admin = session.scalar(select(User).where(User.username == settings.admin_username))
        project = projects.create_project(session, admin, projects.ProjectFields("jobs", TaskId.CLASSIFICATION))
        digits = session.scalar(select(Dataset).where(Dataset.name == "Digits"))
        lenet = session.scalar(select(Weights).where(Weights.name == "LeNet_Digits"))
        ids = {"admin": admin.id, "project": project.id, "digits": digits.id, "lenet": lenet.id}
    try:
        yield settings, db, ids
    finally:
        db.dispose()


def state_and_lines(db, process_id):
    with db.transaction() as session:
        state = session.get(Process, process_id).state
        query = select(ProgressLine.line).where(ProgressLine.process_id == process_id).order_by(ProgressLine.id)
        return state, list(session.scalars(query))


def new_inference(settings, db, ids) -> str:
    order = processes.InferenceOrder(project_id=ids["project"], weights_id=ids["lenet"], dataset_id=ids["digits"])
    with db.transaction() as session:
        admin = session.get(User, ids["admin"])
        return processes.create_inference(session, admin, order, settings.storage_dir).id


def new_training(db, ids) -> str:
    """A training process row as the launch leaves it (the job fails on its inputs before training anything)."""
    process_id, stamp = str(uuid.uuid4()), now()
    with db.transaction() as session:
        session.add(
            Process(
                id=process_id,
                process_type=ProcessType.TRAINING,
                project_id=ids["project"],
                user_id=ids["admin"],
                weights_id=ids["lenet"],
                dataset_id=ids["digits"],
                state=ProcessState.PENDING,
                settings=json.dumps({}),
                created=stamp,
                updated=stamp,
            )
        )
        session.add(Training(process_id=process_id, weights_id=None))
    return process_id


def test_an_inference_runs_its_pending_process_to_finished_outputs(platform):
    settings, db, ids = platform
    process_id = new_inference(settings, db, ids)
    run_inference(process_id, db.url, str(settings.storage_dir))
    state, lines = state_and_lines(db, process_id)
    assert state == ProcessState.FINISHED, lines
    with db.transaction() as session:
        tests = spec_of(session.get(Dataset, ids["digits"]), settings.storage_dir).ids("test")
    stored = json.loads((process_outputs(settings.storage_dir, process_id) / "outputs.json").read_text())
    assert len(stored["predictions"]) == len(stored["outputs"]) == len(tests) > 0
    assert lines and all(line.startswith("Test - batch [") for line in lines)


@pytest.mark.parametrize("entry", [run_inference, run_training], ids=["inference", "training"])
def test_a_process_no_longer_pending_is_left_alone(platform, entry):
    """A redelivered message, or a process stopped while queued: the job ends without touching anything."""
    settings, db, ids = platform
    process_id = new_inference(settings, db, ids) if entry is run_inference else new_training(db, ids)
    with db.transaction() as session:
        session.get(Process, process_id).state = ProcessState.STOPPED
    entry(process_id, db.url, str(settings.storage_dir))
    assert state_and_lines(db, process_id) == (ProcessState.STOPPED, [])
    assert not process_outputs(settings.storage_dir, process_id).exists()


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (run_inference, "the weights or the dataset were deleted"),
        (run_training, "the pretrained weights, the dataset or the new weights were deleted"),
    ],
    ids=["inference", "training"],
)
def test_deleted_inputs_fail_the_process_with_the_reason(platform, entry, reason):
    settings, db, ids = platform
    process_id = new_inference(settings, db, ids) if entry is run_inference else new_training(db, ids)
    with db.transaction() as session:
        session.get(Process, process_id).dataset_id = None  # what deleting the dataset leaves (ON DELETE SET NULL)
    entry(process_id, db.url, str(settings.storage_dir))
    assert state_and_lines(db, process_id) == (ProcessState.FAILED, [f"Error - RuntimeError: {reason}"])
