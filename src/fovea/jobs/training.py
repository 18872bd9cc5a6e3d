"""The training job: fine-tune a weights file on a dataset, exporting each checkpoint into the new weights.

Each checkpoint is exported to ONNX with its model card (parity-checked by `to_onnx`) straight into the new
weights' file, so a stopped or crashed training leaves its last good checkpoint usable; the weights become active
only when the training finishes. torch is imported here, inside the job: the server never needs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fovea.jobs.progress import check_stop, finish, now, run_job, write_line
from fovea.platform.db import Database
from fovea.platform.models import Dataset, Process, Training, Weights
from fovea.platform.weights import file_path

TASKS = {1: "classification", 2: "segmentation", 4: "multilabel", 5: "regression"}


def run_training(process_id: str, db_url: str, storage: str) -> None:
    """Entry point in a worker process."""
    run_job(_run, process_id, db_url, storage)


def _run(db: Database, process_id: str, storage: Path) -> None:
    with db.transaction() as session:
        process = session.get(Process, process_id)
        if process is None or process.state != "pending":
            return
        process.state, process.updated = "running", now()
        training = session.query(Training).filter_by(process_id=process_id).one()
        parent = session.get(Weights, process.weights_id) if process.weights_id else None
        dataset = session.get(Dataset, process.dataset_id) if process.dataset_id else None
        if parent is None or dataset is None or training.weights_id is None:
            raise RuntimeError("the pretrained weights, the dataset or the new weights were deleted")
        job = {
            "settings": json.loads(process.settings),
            "parent_file": file_path(storage, parent.id),
            "parent_name": parent.name,
            "target": training.weights_id,
            "yaml": storage / dataset.path,
            "dataset_name": dataset.name,
            "task": TASKS[dataset.task_id],
            "ctype": dataset.ctype,
        }
    _train(db, process_id, storage, job)
    with db.transaction() as session:
        process = session.get(Process, process_id)
        weights = session.get(Weights, job["target"])
        if process is None or process.state == "stopped" or weights is None:
            return
        weights.is_active = True
        weights.card = _card_json(file_path(storage, weights.id))
    finish(db, process_id, "finished")


def _train(db: Database, process_id: str, storage: Path, job: dict[str, Any]) -> None:
    from fovea.training.pipeline import TrainingJob

    TrainingJob(
        task=job["task"],
        settings=job["settings"],
        parent_file=job["parent_file"],
        parent_name=job["parent_name"],
        yaml_path=job["yaml"],
        dataset_name=job["dataset_name"],
        gray=job["ctype"] == "GRAY",
        out=file_path(storage, job["target"]),
        process_id=process_id,
    ).run(report=lambda line: write_line(db, process_id, line), check_stop=lambda: check_stop(db, process_id))


def _card_json(path: Path) -> str | None:
    from fovea.core.card import load_card

    return load_card(path).to_json()
