"""Result formats: canonical JSON, AiCOCO, Supervisely, COCO results, DeepHealth output rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fovea.core.card import ModelCard
from fovea.core.formats.aicoco import aicoco_categories, aicoco_regressions, to_aicoco
from fovea.core.formats.canonical import from_canonical, to_canonical
from fovea.core.formats.coco import coco_categories, to_coco_results
from fovea.core.formats.deephealth import to_deephealth_value
from fovea.core.formats.masks import decode_bitmap, encode_bitmap, rle_decode, rle_encode
from fovea.core.formats.supervisely import supervisely_project_meta, to_supervisely_annotation
from fovea.core.predictions import Prediction, Task
from fovea.core.tasks.segmentation import volume_slices
from fovea.errors import InputError

FORMATS = ("json", "aicoco", "supervisely", "coco")

__all__ = [
    "FORMATS",
    "aicoco_categories",
    "aicoco_regressions",
    "coco_categories",
    "decode_bitmap",
    "encode_bitmap",
    "format_predictions",
    "from_canonical",
    "rle_decode",
    "rle_encode",
    "supervisely_project_meta",
    "to_aicoco",
    "to_canonical",
    "to_coco_results",
    "to_deephealth_value",
    "to_supervisely_annotation",
]


def format_predictions(
    predictions: Sequence[Prediction],
    fmt: str,
    card: ModelCard,
    images: Sequence[dict[str, Any]] | None = None,
) -> Any:
    """Many predictions in one format. `images` are AiCOCO-style entries (id, index, file_name)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    images = (
        list(images)
        if images is not None
        else [{"id": str(i), "index": i, "file_name": p.source or f"image{i}"} for i, p in enumerate(predictions)]
    )
    if fmt == "json":
        return [to_canonical(p) for p in predictions]
    if fmt == "aicoco":
        entries = []
        for prediction, image in zip(predictions, images, strict=True):
            entry = {"category_ids": None, "regressions": None, **image}
            if len(prediction.size) == 3:  # a volume: one entry per slice, as a client sends a series
                entries += [{**entry, "id": f"{entry['id']}-{z}", "index": z} for z in range(prediction.size[0])]
            else:
                entries.append(entry)
        return to_aicoco(predictions, entries, card)
    if fmt == "supervisely":  # annotations of 2-D images: a volume's masks as one annotation per slice
        return [
            {"image_name": name, "annotation": to_supervisely_annotation(p, card)}
            for prediction, image in zip(predictions, images, strict=True)
            for name, p in _planes(prediction, image["file_name"])
        ]
    return {
        "categories": coco_categories(card),
        "results": to_coco_results(predictions, list(range(len(predictions))), card),
    }


def _planes(prediction: Prediction, name: str) -> list[tuple[str, Prediction]]:
    """(image name, prediction): the prediction itself, or for a volume's masks each slice, named `name#z`."""
    if len(prediction.size) == 3 and prediction.task is Task.SEGMENTATION:
        return [(f"{name}#{z}", plane) for z, plane in enumerate(volume_slices(prediction))]
    return [(name, prediction)]
