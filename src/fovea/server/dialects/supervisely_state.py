"""The Supervisely dialect's vocabulary: info objects, settings names, video parameters."""

from __future__ import annotations

import os
from typing import Any

from fovea.core.card import ModelCard
from fovea.core.predictions import Task
from fovea.errors import InputError
from fovea.sessions.custom import AnySession

TASK_WORDS = {
    Task.CLASSIFICATION: "classification",
    Task.MULTILABEL: "multi-label classification",
    Task.DETECTION: "object detection",
    Task.SEGMENTATION: "semantic segmentation",
    Task.REGRESSION: "regression",
}
# Supervisely's setting names -> Fovea's (`conf` is what ModelAPI's predict(conf=...) sends).
# A request's unknown keys are ignored (ModelAPI sends extras such as batch_size).
_ALIASES = {
    "conf": ("conf_thres", "threshold"),
    "iou": ("iou_thres",),
    "confidence": ("conf_thres", "threshold"),
}
SYNC_VIDEO_MAX_FRAMES = 300
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


def default_settings(session: AnySession) -> dict[str, Any]:
    """The session's defaults under Fovea's names (seed 001 sets `conf_thres`, `iou_thres`); a stable key set
    without `classes`, which the client adds itself. Supervisely's `conf` and `iou` are accepted as aliases.
    """
    return {key: value for key, value in session.default_settings.items() if key != "classes"}


def request_settings(session: AnySession, given: Any) -> dict[str, Any]:
    """A request's settings in Fovea's names: aliases translated, known keys type-checked, unknown ignored."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise InputError("settings must be a JSON object")
    known = session.default_settings
    out: dict[str, Any] = {}
    for key, value in given.items():  # aliases first, so a setting under its own name wins
        for name in _ALIASES.get(key, ()):
            if name in known:
                out.setdefault(name, value)
                break
    for key, value in given.items():
        if key == "classes":
            out["classes"] = _classes(session.card, value)
        elif key in known:
            out[key] = value
    return session.settings(out)


def _classes(card: ModelCard, value: Any) -> list[str] | None:
    if value is None or value == "all":
        return None
    if not isinstance(value, list):
        raise InputError("settings.classes must be a list of class names, 'all' or null")
    return [name for name in value if name in card.class_names]  # unknown names are ignored


def first(state: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if state.get(key) is not None:
            return state[key]
    return default


def video_request(state: dict[str, Any]) -> dict[str, Any]:
    """Frame selection keys of a video request, every alias accepted (§8)."""
    if state.get("tracker") is not None:
        raise InputError("tracking is not supported; send tracker: null")
    direction = first(state, "direction", "framesDirection", "frames_direction", default="forward")
    params = {
        "start": first(state, "startFrameIndex", "start_frame_index", "start_frame", default=0),
        "count": first(state, "framesCount", "frames_count", "num_frames"),
        "end": first(state, "endFrameIndex", "end_frame_index", "end_frame"),
        "duration": first(state, "duration"),
        "stride": first(state, "stride", "step", default=1),
        "direction": direction,
    }
    for key in ("start", "count", "end", "stride"):
        if params[key] is not None and (isinstance(params[key], bool) or not isinstance(params[key], int)):
            raise InputError(f"video parameter {key} must be an integer")
    return params


def result_dict(annotation: dict[str, Any], name: str | None = None, **ids: Any) -> dict[str, Any]:
    return {
        "annotation": annotation,
        "data": {},
        "source": None,
        "name": name,
        "image_name": name,
        "path": None,
        "url": None,
        "project_id": None,
        "dataset_id": None,
        "image_id": ids.get("image_id"),
        "video_id": ids.get("video_id"),
        "frame_index": ids.get("frame_index"),
        "slides_data": {},
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
