"""Per-request inference settings: defaults from the card, overrides checked by name and type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fovea.core.card import ModelCard
from fovea.errors import InputError

_FRACTIONS = {"conf_thres", "iou_thres", "threshold"}
_COUNTS = {"top_k", "max_det"}


def resolve_settings(card: ModelCard, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The card's default settings updated with `overrides`; unknown keys or bad values raise InputError."""
    settings = card.default_settings
    if not overrides:
        return settings
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        known = ", ".join(sorted(settings)) or "none"
        raise InputError(f"unknown inference settings {unknown}; acceptable keys: {known}")
    for key, value in overrides.items():
        settings[key] = _check(key, value, card)
    return settings


def _check(key: str, value: Any, card: ModelCard) -> Any:
    if key in _FRACTIONS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise InputError(f"setting {key} must be a number between 0 and 1, got {value!r}")
        return float(value)
    if key in _COUNTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"setting {key} must be a positive integer, got {value!r}")
        return value
    if key == "classes":
        return _check_classes(value, card)
    return value


def _check_classes(value: Any, card: ModelCard) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InputError(f"setting classes must be a list of class names, got {value!r}")
    names = card.class_names
    chosen = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(names):
            chosen.append(names[item])
        elif isinstance(item, str) and item in names:
            chosen.append(item)
        else:
            raise InputError(f"setting classes: {item!r} is not a class of this model")
    return chosen


def class_mask(card: ModelCard, settings: Mapping[str, Any]) -> np.ndarray | None:
    """A boolean per class: True where results may be reported.

    That is the `classes` whitelist, minus the background and classes the card hides (`display: false`);
    None when every class may be reported.
    """
    chosen = settings.get("classes")
    background = card.decoder.background_index
    displayed = card.displayed
    if chosen is None and background is None and displayed.all():
        return None
    allowed = displayed.copy() if chosen is None else displayed & np.isin(np.array(card.class_names), list(chosen))
    if background is not None and 0 <= background < len(allowed):
        allowed[background] = False
    return allowed
