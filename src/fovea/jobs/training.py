"""The training job: fine-tune a weights file on a dataset, exporting each checkpoint into the new weights.

Each checkpoint is exported to ONNX with its model card (parity-checked by `to_onnx`) straight into the new
weights' file, so a stopped or crashed training leaves its last good checkpoint usable; the weights become active
only when the training finishes. torch is imported here, inside the job: the server never needs it.
"""

from __future__ import annotations

import json
from pathlib import Path

from fovea.core.card import load_card
from fovea.jobs.progress import check_stop, claim_inputs, run_job, write_line
from fovea.platform.datasets import yaml_path
from fovea.platform.db import Database
from fovea.platform.enums import ProcessState, TaskId
from fovea.platform.models import Training, Weights
from fovea.platform.processes import settle
from fovea.platform.storage import weights_file


def run_training(process_id: str, db_url: str, storage: str) -> None:
    """Entry point in a worker process."""
    run_job(_run, process_id, db_url, storage)


def _run(db: Database, process_id: str, storage: Path) -> None:
    from fovea.training.pipeline import TrainingJob

    gone = "the pretrained weights, the dataset or the new weights were deleted"
    with db.transaction() as session:
        claimed = claim_inputs(session, process_id, gone)
        if claimed is None:
            return
        process, parent, dataset = claimed
        training = session.query(Training).filter_by(process_id=process_id).one()
        if training.weights_id is None:
            raise RuntimeError(gone)
        target = training.weights_id
        job = TrainingJob(
            task=TaskId(dataset.task_id).task.value,
            settings=json.loads(process.settings),
            parent_file=weights_file(storage, parent.id),
            parent_name=parent.name,
            yaml_path=yaml_path(dataset, storage),  # checked to stay under storage/datasets
            dataset_name=dataset.name,
            gray=dataset.ctype == "GRAY",
            ctype=dataset.ctype,
            ctype_gt=dataset.ctype_gt,
            out=weights_file(storage, target),
            process_id=process_id,
        )
    job.run(report=lambda line: write_line(db, process_id, line), check_stop=lambda: check_stop(db, process_id))
    _activate(db, process_id, target, storage)


def _activate(db: Database, process_id: str, target: int, storage: Path) -> None:
    """Activate the new weights and finish the process in one transaction, if the process is still running and
    the weights are still the ones it trains (deleted ones fail it, and their file goes)."""
    with db.transaction() as session:
        weights = session.get(Weights, target)
        if weights is None or weights.process_id != process_id:
            weights_file(storage, target).unlink(missing_ok=True)
            raise RuntimeError("the new weights were deleted while the training ran")
        if not settle(session, process_id, ProcessState.FINISHED):  # stopped, or failed from outside meanwhile
            return
        weights.is_active = True
        weights.card = load_card(weights_file(storage, weights.id)).to_json()
