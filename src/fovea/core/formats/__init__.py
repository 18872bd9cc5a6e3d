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
from fovea.core.predictions import Prediction
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
        entries = [{"category_ids": None, "regressions": None, **image} for image in images]
        if len(predictions) == 1 and len(predictions[0].size) == 3:
            return to_aicoco(
                predictions,
                [{**entries[0], "id": f"{entries[0]['id']}-{z}", "index": z} for z in range(predictions[0].size[0])],
                card,
            )
        return to_aicoco(predictions, entries, card)
    if fmt == "supervisely":
        return [
            {"image_name": image["file_name"], "annotation": to_supervisely_annotation(p, card)}
            for p, image in zip(predictions, images, strict=True)
            if len(p.size) == 2
        ]
    return {
        "categories": coco_categories(card),
        "results": to_coco_results(predictions, list(range(len(predictions))), card),
    }
