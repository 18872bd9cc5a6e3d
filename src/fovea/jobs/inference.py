"""The inference job: a dataset's test split through a weights file, outputs written atomically.

Images go through the model's batched pipelines; a scan that is a volume (NIfTI, multi-frame DICOM) goes through
`predict_volume` on its own, and its mask is written as `.nii.gz` with the scan's spacing and affine.

The resolved hyperparameters apply (backend-api.md §10): Input height/width become the card's input size, Test
augmentations run through `fovea.training.tta`, and when every test image is labelled each Test line reports the
running `Metric` for the task (fovea.evaluate: accuracy, dice or pixel accuracy, regression error). Detection lines
never do: the dataset format has no boxes (dataset format §1.5: detection datasets are test-only), so a detector is
scored by `fovea evaluate` on COCO annotations instead.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fovea.core.engines.onnxruntime import default_threads
from fovea.core.formats import to_canonical, to_deephealth_value
from fovea.core.io import Volume, sniff, write_nifti
from fovea.core.predictions import Prediction, Task
from fovea.datasets.files import dataset_file
from fovea.errors import InputError
from fovea.evaluate import Scorer, labelled, process_metric, scorer_for
from fovea.jobs.progress import claim_inputs, finish, run_job, write_line, writing_outputs
from fovea.paths import atomic_path
from fovea.platform.datasets import first_plane, yaml_path
from fovea.platform.db import Database
from fovea.platform.enums import ProcessState, TaskId
from fovea.platform.processes import SETTINGS_KEY
from fovea.platform.storage import process_outputs, weights_file

MASK_ROUTE = "media/{process_id}/{image_id}.png"
VOLUME_MASK_ROUTE = "media/{process_id}/{image_id}.nii.gz"
SCAN_KINDS = ("nifti", "dicom")  # read before batching: they may be volumes
Placement = tuple[tuple[float, float, float], Any]  # a volume's (spacing, affine or None): where its mask goes
MIN_ENGINE_BATCH = 16


def run_inference(process_id: str, db_url: str, storage: str) -> None:
    """Entry point in a worker process."""
    run_job(_run, process_id, db_url, storage)


def _run(db: Database, process_id: str, storage: Path) -> None:
    from fovea.datasets import load_dataset_yaml

    with db.transaction() as session:
        claimed = claim_inputs(session, process_id, "the weights or the dataset were deleted")
        if claimed is None:
            return
        process, weights, dataset = claimed
        weights_path = weights_file(storage, weights.id)
        dataset_yaml = yaml_path(dataset, storage)
        settings = json.loads(process.settings)
        image_name = process.image_name
        segmentation = dataset.task_id == TaskId.SEGMENTATION
    model = _load(weights_path, settings)
    predictor = _test_time(model, settings)
    spec = load_dataset_yaml(dataset_yaml, segmentation=segmentation)
    ids = spec.ids("test")
    batch_size = max(1, int(settings.get("Batch size", 8)))  # what the progress lines count
    engine_batch = max(batch_size, MIN_ENGINE_BATCH)
    batches = math.ceil(len(ids) / batch_size)
    scorer = _scorer(model, spec, ids)
    rows, canonical = [], []
    out = process_outputs(storage, process_id)
    with writing_outputs(db, process_id):  # every write checks the process still runs (a deleted project)
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
        predictions, scans = _predict(predictor, paths, settings.get(SETTINGS_KEY), engine_batch)
        for offset in range(0, len(window_ids), batch_size):
            for k, (image_id, prediction) in enumerate(
                zip(window_ids[offset : offset + batch_size], predictions[offset : offset + batch_size], strict=True),
                start=offset,
            ):
                name = image_name or first_plane(spec.samples[image_id].location)
                prediction.source = name
                mask_url = None
                if prediction.task is Task.SEGMENTATION:
                    with writing_outputs(db, process_id):
                        mask_url = _write_mask(out, image_id, prediction, process_id, scans.get(k))
                rows.append([name, to_deephealth_value(prediction, mask_url)])
                canonical.append(to_canonical(prediction))
                if scorer is not None:
                    scorer(spec, image_id, prediction, root)
            done = (start + offset) // batch_size + 1
            metric = ""
            if scorer is not None:
                metric = f" - metric={process_metric(model.task, scorer.meter, settings.get('Metric')):.3f}"
            write_line(db, process_id, f"Test - batch [{done}/{batches}]{metric}")
    with writing_outputs(db, process_id), atomic_path(out / "outputs.json") as tmp:
        tmp.write_text(json.dumps({"outputs": rows, "predictions": canonical, "classes": list(model.card.class_names)}))
    finish(db, process_id, ProcessState.FINISHED)


def _load(path: Path, settings: dict[str, Any]) -> Any:
    """The model at the resolved Input height x Input width. The launch checks made these equal a static input size,
    so a different size here means the graph takes any size: the card's preprocessing then resizes to it."""
    import fovea
    from fovea.core.card import load_card

    card = load_card(path)
    if card.input.dims == 2 and "Input height" in settings:
        size = (int(settings["Input height"]), int(settings["Input width"]))
        if size != tuple(card.input.size):
            card = card.model_copy(update={"input": card.input.model_copy(update={"size": size})})
    return fovea.load(path, card)


def _test_time(model: Any, settings: dict[str, Any]) -> Any:
    """What predicts: the model, or the model through the Test augmentations (averaged when they are random)."""
    text = settings.get("Test augmentations")
    if not text or not text.strip():
        return model
    from fovea.training.tta import TestTimeAugmentation  # the `train` extra, which any augmentation string needs

    return TestTimeAugmentation(model, text)


def _scorer(model: Any, spec: Any, ids: list[int]) -> Scorer | None:
    """Scores the predictions when every test image is labelled (§9: the Test lines' metric), else None."""
    if not ids or not all(labelled(spec, i, model.task) for i in ids) or model.task is Task.DETECTION:
        return None
    try:
        return scorer_for(model, spec)
    except InputError:  # classes or features that do not match the model's: nothing to score against
        return None


def _predict(
    model: Any, paths: list[Path], settings: Any, engine_batch: int
) -> tuple[list[Prediction], dict[int, Placement]]:
    """Predictions in path order, and (spacing, affine) by position for the inputs that were volumes.

    Raster images are decoded in predict_batch's pipelines. Scans are read here first, one at a time: a volume is
    predicted whole and let go before the next is read (volumes are large); a single DICOM frame joins the images.
    """
    items: list[Any] = list(paths)
    predictions: dict[int, Prediction] = {}
    scans: dict[int, Placement] = {}
    for k, path in enumerate(paths):
        with path.open("rb") as file:
            head = file.read(4096)
        if sniff(head, path.name) not in SCAN_KINDS:
            continue
        item = model.read(path)
        if isinstance(item, Volume):
            predictions[k] = model.predict_volume(item, settings)
            scans[k] = (item.spacing, item.affine)
        else:
            items[k] = item  # a single DICOM frame: decoded once, then batched with the images
    flat = [k for k in range(len(items)) if k not in predictions]
    batched = model.predict_batch([items[k] for k in flat], settings, batch_size=engine_batch) if flat else []
    predictions.update(zip(flat, batched, strict=True))
    return [predictions[k] for k in range(len(items))], scans


def _write_mask(
    out: Path, image_id: int, prediction: Prediction, process_id: str, scan: Placement | None = None
) -> str:
    """The mask as a PNG, or for a volume as `.nii.gz` with the scan's (spacing, affine), so it overlays the scan."""
    import numpy as np
    from PIL import Image

    # reference/backend-api.md, `media/`: 0/255 for a model with no class or one class, the class index per pixel
    # from two classes on (a background class included: it is index 0).
    binary = len(prediction.class_names) < 2
    label_map = np.zeros(prediction.size, np.uint8)
    for label, mask in zip(prediction.labels, prediction.masks, strict=True):
        label_map[mask] = 255 if binary else label
    if scan is not None:
        spacing, affine = scan
        write_nifti(label_map, out / f"{image_id}.nii.gz", spacing=spacing, affine=affine)
        return VOLUME_MASK_ROUTE.format(process_id=process_id, image_id=image_id)
    with atomic_path(out / f"{image_id}.png") as tmp:
        Image.fromarray(label_map).save(tmp, format="PNG")
    return MASK_ROUTE.format(process_id=process_id, image_id=image_id)
