"""How the Supervisely dialect reads requests and shapes answers: settings names, video parameters, result dicts."""

from __future__ import annotations

from typing import Any

from fovea.core.card import ModelCard
from fovea.errors import InputError
from fovea.sessions.custom import AnySession

# Supervisely's setting names -> Fovea's (`conf` is what ModelAPI's predict(conf=...) sends).
# A request's unknown keys are ignored (ModelAPI sends extras such as batch_size).
_ALIASES = {
    "conf": ("conf_thres", "threshold"),
    "iou": ("iou_thres",),
    "confidence": ("conf_thres", "threshold"),
}
SYNC_VIDEO_MAX_FRAMES = 300


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
