"""ECVL augmentation strings as albumentations pipelines (needs the `train` extra).

`augment_grammar` parses and validates a string into a tree of `Augmentation`/`Container` nodes; this module maps
that tree onto albumentations (custom transforms live in `augment_ops`). Problems albumentations alone finds (volumes,
its own parameter limits) are `AugmentationError`s too, reading "line N: <Name>: <problem>".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

# albumentations asks PyPI for a newer version on import, synchronously: not from a self-hosted server.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A
import cv2

from fovea.training import augment_ops as ops
from fovea.training.augment_grammar import SEQUENTIAL, Augmentation, AugmentationError, Container, Node, parse

__all__ = ["Augmentation", "AugmentationError", "Container", "Node", "build_pipeline", "parse_augmentations"]

# OpenCV's flag for each name the grammar accepts (INTERP_NAMES, BORDER_NAMES; the tests check they agree).
INTERP = {
    "linear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos4": cv2.INTER_LANCZOS4,
}
BORDER = {
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT,
    "reflect_101": cv2.BORDER_REFLECT_101,
    "reflect101": cv2.BORDER_REFLECT_101,
    "wrap": cv2.BORDER_WRAP,
}


def _volumes_unsupported(vector: tuple[float, ...]) -> None:
    if len(vector) == 3:
        raise ValueError("volumes are not supported")


def _rotate(p: dict[str, Any]) -> A.BasicTransform:
    interp, (lo, hi) = INTERP[p["interp"]], p["angle"]
    if p["center"] is not None:
        return ops.RotateAbout((lo, hi), p["center"], p["scale"], interp)
    # albumentations turns counter-clockwise for positive angles; ECVL clockwise: negate the range.
    return A.Affine(
        rotate=(-hi, -lo),
        scale=p["scale"],
        interpolation=interp,
        mask_interpolation=cv2.INTER_NEAREST,
        border_mode=cv2.BORDER_CONSTANT,
        fill=0,
        fill_mask=0,
        p=1,
    )


def _resize_dim(p: dict[str, Any]) -> A.BasicTransform:
    _volumes_unsupported(p["dims"])
    width, height = (int(x) for x in p["dims"])
    return A.Resize(
        height=height, width=width, interpolation=INTERP[p["interp"]], mask_interpolation=cv2.INTER_NEAREST, p=1
    )


def _resize_scale(p: dict[str, Any]) -> A.BasicTransform:
    _volumes_unsupported(p["scale"])
    return ops.ResizeScale(*p["scale"], interpolation=INTERP[p["interp"]])


def _warp_args(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "interpolation": INTERP[p["interp"]],
        "mask_interpolation": cv2.INTER_NEAREST,
        "border_mode": BORDER[p["border_type"]],
        "fill": p["border_value"],
        "fill_mask": 0,
        "p": 1,
    }


def _optical(p: dict[str, Any]) -> A.BasicTransform:
    if p["shift_limit"] == (0.0, 0.0):
        return A.OpticalDistortion(distort_limit=p["distort_limit"], mode="camera", **_warp_args(p))
    return ops.OpticalDistortionShifted(p["shift_limit"], distort_limit=p["distort_limit"], **_warp_args(p))


def _salt_and_pepper(p: dict[str, Any]) -> A.BasicTransform:
    if p["per_channel"] == 0:
        return A.SaltAndPepper(amount=p["p"], salt_vs_pepper=(0.5, 0.5), p=1)
    return ops.SaltPepper(p["p"], p["per_channel"], salt=0.5)


def _center_crop(p: dict[str, Any]) -> A.BasicTransform:
    if p["size"] is None:
        return ops.CenterSquareCrop()
    _volumes_unsupported(p["size"])
    width, height = (int(x) for x in p["size"])
    return A.CenterCrop(height=height, width=width, pad_if_needed=True, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1)


def _random_crop(p: dict[str, Any]) -> A.BasicTransform:
    _volumes_unsupported(p["size"])
    width, height = (int(x) for x in p["size"])
    border = {"border_mode": BORDER[p["border_type"]], "fill": p["border_value"], "fill_mask": 0}
    return A.RandomCrop(height=height, width=width, pad_if_needed=True, pad_position="center", **border, p=1)


def _normalize(p: dict[str, Any]) -> A.BasicTransform:
    # max_pixel_value=1: (x - mean) / std on the current values, with no rescaling (scaling is AugToFloat32's job).
    return A.Normalize(mean=p["mean"], std=p["std"], max_pixel_value=1.0, p=1)


BUILDERS: dict[str, Callable[[dict[str, Any]], A.BasicTransform]] = {
    "AugRotate": _rotate,
    "AugResizeDim": _resize_dim,
    "AugResizeScale": _resize_scale,
    "AugFlip": lambda p: A.VerticalFlip(p=p["p"]),
    "AugMirror": lambda p: A.HorizontalFlip(p=p["p"]),
    "AugTranspose": lambda p: A.Transpose(p=p["p"]),
    "AugGaussianBlur": lambda p: ops.GaussianBlurECVL(p["sigma"]),
    "AugAdditiveLaplaceNoise": lambda p: ops.LaplaceNoise(p["std_dev"]),
    "AugAdditivePoissonNoise": lambda p: ops.PoissonNoise(p["lambda"]),
    "AugGammaContrast": lambda p: ops.GammaECVL(p["gamma"]),
    "AugBrightness": lambda p: ops.BrightnessECVL(p["beta"]),
    "AugCoarseDropout": lambda p: ops.GridDropout(p["p"], p["drop_size"], p["per_channel"]),
    "AugGridDistortion": lambda p: ops.GridDistortionSampled(
        p["num_steps"], distort_limit=p["distort_limit"], **_warp_args(p)
    ),
    "AugElasticTransform": lambda p: ops.ElasticSampled(p["alpha"], p["sigma"], **_warp_args(p)),
    "AugOpticalDistortion": _optical,
    "AugSalt": lambda p: ops.SaltPepper(p["p"], p["per_channel"], salt=1.0),
    "AugPepper": lambda p: ops.SaltPepper(p["p"], p["per_channel"], salt=0.0),
    "AugSaltAndPepper": _salt_and_pepper,
    "AugNormalize": _normalize,
    "AugCenterCrop": _center_crop,
    "AugRandomCrop": _random_crop,
    # divisor_gt is accepted but unused: masks are index maps, which a division would corrupt (§2.3).
    "AugToFloat32": lambda p: ops.ToFloatECVL(p["divisor"]),
    "AugDivBy255": lambda p: ops.ToFloatECVL(255.0),
    "AugScaleTo": lambda p: ops.ScaleFromTo(None, (p["new_min"], p["new_max"])),
    "AugScaleFromTo": lambda p: ops.ScaleFromTo((p["old_min"], p["old_max"]), (p["new_min"], p["new_max"])),
}


def _build(node: Node) -> A.BasicTransform:
    if isinstance(node, Container):
        children = [_build(child) for child in node.children]
        if node.kind == SEQUENTIAL:
            return A.Sequential(children, p=1)
        if not children:
            return A.NoOp(p=1)
        # Wrapping each child keeps the choice uniform and the child's own p: a bare OneOf weights the choice by
        # the children's p and then forces the chosen one.
        return A.OneOf([A.Sequential([child], p=1) for child in children], p=node.p)
    try:
        return BUILDERS[node.name](node.params)
    except ValueError as exc:  # volumes, and any limit only albumentations knows (its pydantic checks)
        detail = re.search(r"Value error, (.*?) \[type=", str(exc))
        message = detail.group(1) if detail else str(exc).splitlines()[0]
        raise AugmentationError(f"line {node.line}: {node.name}: {message}") from None


def parse_augmentations(text: str | None) -> Node | None:
    """Parse and validate an augmentation string; None for a null or blank one. Raises AugmentationError.

    The tree is also built once, so that unsupported volumes and any limit only albumentations knows fail here,
    at request time, rather than in the training process.
    """
    node = parse(text)
    if node is not None:
        _build(node)
    return node


def build_pipeline(text: str | None) -> A.Compose:
    """The pipeline for an augmentation string: call it as pipeline(image=HxWxC array, mask=optional HxW index map)
    to get a dict with 'image' (and 'mask'). A blank string gives a pipeline that changes nothing."""
    node = parse(text)
    return A.Compose([] if node is None else [_build(node)])
