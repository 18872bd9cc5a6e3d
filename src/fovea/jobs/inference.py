"""The inference job: a dataset's test split through a weights file, outputs written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

from fovea.core.engines.onnxruntime import default_threads
from fovea.core.formats import to_canonical, to_deephealth_value
from fovea.core.predictions import Task
from fovea.datasets.files import dataset_file
from fovea.jobs.progress import claim, finish, run_job, write_line
from fovea.paths import atomic_path
from fovea.platform.datasets import first_plane, yaml_path
from fovea.platform.db import Database
from fovea.platform.models import Dataset, Weights
from fovea.platform.processes import SETTINGS_KEY
from fovea.platform.weights import file_path

MASK_ROUTE = "media/{process_id}/{image_id}.png"
MIN_ENGINE_BATCH = 16


def outputs_dir(storage: Path, process_id: str) -> Path:
    return storage / "processes" / process_id


def run_inference(process_id: str, db_url: str, storage: str) -> None:
    """Entry point in a worker process."""
    run_job(_run, process_id, db_url, storage)


def _run(db: Database, process_id: str, storage: Path) -> None:
    import fovea
    from fovea.datasets import load_dataset_yaml

    with db.transaction() as session:
        process = claim(session, process_id)
        if process is None:
            return
        weights = session.get(Weights, process.weights_id) if process.weights_id else None
        dataset = session.get(Dataset, process.dataset_id) if process.dataset_id else None
        if weights is None or dataset is None:
            raise RuntimeError("the weights or the dataset were deleted")
        weights_file = file_path(storage, weights.id)
        dataset_yaml = yaml_path(dataset, storage)
        settings = json.loads(process.settings)
        image_name = process.image_name
        segmentation = dataset.task_id == 2
    model = fovea.load(weights_file)
    spec = load_dataset_yaml(dataset_yaml, segmentation=segmentation)
    ids = spec.ids("test")
    batch_size = max(1, int(settings.get("Batch size", 8)))  # what the progress lines count
    engine_batch = max(batch_size, MIN_ENGINE_BATCH)
    batches = math.ceil(len(ids) / batch_size)
    labelled = all(spec.samples[i].label is not None for i in ids) and model.task is Task.CLASSIFICATION
    correct = seen = 0
    rows, canonical = [], []
    out = outputs_dir(storage, process_id)
    out.mkdir(parents=True, exist_ok=True)
    # Decode and run a window of several engine batches at once, one pipeline per core (predict_batch), then
    # report each batch of the window: the progress lines keep the Batch size the user asked for, while the
    # engine runs batches large enough to be efficient (Batch size defaults to 1).
    window = math.ceil(engine_batch * default_threads() / batch_size) * batch_size  # whole batches per window
    for start in range(0, len(ids), window):
        window_ids = ids[start : start + window]
        # Checked as they are read: a file changed since the upload fails the process with a line naming it.
        root = dataset_yaml.parent
        paths = [dataset_file(root, first_plane(spec.samples[i].location), f"images[{i}]") for i in window_ids]
        predictions = model.predict_batch(paths, settings.get(SETTINGS_KEY), batch_size=engine_batch)
        for offset in range(0, len(window_ids), batch_size):
            for image_id, prediction in zip(
                window_ids[offset : offset + batch_size], predictions[offset : offset + batch_size], strict=True
            ):
                name = image_name or first_plane(spec.samples[image_id].location)
                prediction.source = name
                mask_url = None
                if prediction.task is Task.SEGMENTATION:
                    mask_url = _write_mask(out, image_id, prediction, process_id)
                rows.append([name, to_deephealth_value(prediction, mask_url)])
                canonical.append(to_canonical(prediction))
                if labelled:
                    seen += 1
                    correct += int(prediction.labels[0] == spec.samples[image_id].label)
            done = (start + offset) // batch_size + 1
            metric = f" - metric={correct / seen:.3f}" if labelled and seen else ""
            write_line(db, process_id, f"Test - batch [{done}/{batches}]{metric}")
    with atomic_path(out / "outputs.json") as tmp:
        tmp.write_text(json.dumps({"outputs": rows, "predictions": canonical, "classes": list(model.card.class_names)}))
    finish(db, process_id, "finished")


def _write_mask(out: Path, image_id: int, prediction, process_id: str) -> str:
    import numpy as np
    from PIL import Image

    # reference/backend-api.md, `media/`: 0/255 for a model with no class or one class, the class index per pixel
    # from two classes on (a background class included: it is index 0).
    binary = len(prediction.class_names) < 2
    label_map = np.zeros(prediction.size, np.uint8)
    for label, mask in zip(prediction.labels, prediction.masks, strict=True):
        label_map[mask] = 255 if binary else label
    with atomic_path(out / f"{image_id}.png") as tmp:
        Image.fromarray(label_map).save(tmp, format="PNG")
    return MASK_ROUTE.format(process_id=process_id, image_id=image_id)
