"""What a Supervisely session says about itself: session and deploy info, and the memory of `/get_status`."""

from __future__ import annotations

import os
from typing import Any

from fovea.core.predictions import Task
from fovea.sessions.custom import AnySession

TASK_WORDS = {
    Task.CLASSIFICATION: "classification",
    Task.MULTILABEL: "multi-label classification",
    Task.DETECTION: "object detection",
    Task.SEGMENTATION: "semantic segmentation",
    Task.REGRESSION: "regression",
}
# The card's input type, in Supervisely's words for a model's precision.
PRECISIONS = {"float32": "fp32", "float16": "fp16", "uint8": "uint8"}


def session_info(session: AnySession) -> dict[str, Any]:
    card = session.card
    return {
        "app_name": "Fovea",
        "session_id": session.id,
        "model_name": card.name,
        "checkpoint_name": session.name,
        "task type": TASK_WORDS[card.task],
        "number_of_classes": len(card.classes),
        "sliding_window_support": "none",
        "videos_support": True,
        "async_video_inference_support": True,
        "async_image_inference_support": True,
        "tracking_on_videos_support": False,
        "tracking_algorithms": [],
        "batch_inference_support": True,
        "max_batch_size": session.config.max_batch_size,
        "device": session.device,
        "runtime": session.runtime,
    }


def deploy_info(session: AnySession) -> dict[str, Any]:
    card = session.card
    return {
        "checkpoint_name": session.name,
        "model_name": card.name,
        "architecture": card.provenance.architecture,
        "checkpoint_url": None,
        "custom_checkpoint_path": None,
        "model_source": "Custom models",
        "task_type": TASK_WORDS[card.task],
        "device": session_info(session)["device"],
        "runtime": session.runtime,
        "model_precision": PRECISIONS[card.input.dtype] if session.runtime == "onnxruntime" else None,
        "hardware": None,
        "deploy_params": {"max_batch_size": session.config.max_batch_size},
    }


def memory_status() -> dict[str, dict[str, int | None]]:
    """`gpu_memory` and `ram_memory` (bytes or null) of `/get_status` and `/get_inference_status`: this process's
    resident memory out of the machine's; no GPU figures (ONNX Runtime does not report them)."""
    return {"gpu_memory": {"allocated": None, "total": None}, "ram_memory": _ram()}


def _ram() -> dict[str, int | None]:
    allocated = total = None
    try:
        with open("/proc/self/statm") as statm:  # Linux: pages; the second field is resident
            allocated = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):  # not Linux: unknown rather than made up
        pass
    return {"allocated": allocated, "total": total}
