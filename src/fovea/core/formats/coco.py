"""COCO results JSON: the list pycocotools' `loadRes` reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fovea.core.card import ModelCard
from fovea.core.formats.masks import rle_encode
from fovea.core.predictions import Prediction, Task


def to_coco_results(
    predictions: Sequence[Prediction], image_ids: Sequence[int], card: ModelCard
) -> list[dict[str, Any]]:
    """One row per box, mask or chosen class. `category_id` is the class index + 1 (COCO ids start at 1)."""
    rows: list[dict[str, Any]] = []
    for prediction, image_id in zip(predictions, image_ids, strict=True):
        if prediction.task is Task.DETECTION:
            for box, label, score in zip(prediction.boxes, prediction.labels, prediction.scores, strict=True):
                x1, y1, x2, y2 = (float(v) for v in box)
                rows.append(
                    {
                        "image_id": image_id,
                        "category_id": int(label) + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": float(score),
                    }
                )
        elif prediction.task is Task.SEGMENTATION:
            if len(prediction.size) != 2:
                raise ValueError("COCO results hold 2-D masks; split a volume into slices first")
            for label, score, mask in zip(prediction.labels, prediction.scores, prediction.masks, strict=True):
                rows.append(
                    {
                        "image_id": image_id,
                        "category_id": int(label) + 1,
                        "segmentation": rle_encode(mask),
                        "score": float(score),
                    }
                )
        elif prediction.task in (Task.CLASSIFICATION, Task.MULTILABEL):
            for label, score in zip(prediction.labels, prediction.scores, strict=True):
                rows.append({"image_id": image_id, "category_id": int(label) + 1, "score": float(score)})
        else:
            raise ValueError("COCO results do not apply to regression")
    return rows


def coco_categories(card: ModelCard) -> list[dict[str, Any]]:
    return [{"id": i + 1, "name": c.name, "supercategory": c.supercategory or ""} for i, c in enumerate(card.classes)]
