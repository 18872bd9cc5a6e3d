"""The reference loop and the machine's limit, as defined in DESIGN.md §6.

- reference: sequential Pillow decode, resize, normalise, one ONNX Runtime run per image (default threads);
- limit: cores / (single-thread decode+preprocess time + single-thread model time) per image.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from fovea.core.card import ModelCard


def pillow_preprocess(path: Path, card: ModelCard) -> np.ndarray:
    """Decode and preprocess one image the plain way (Pillow), following the card's input spec."""
    spec = card.input
    th, tw = spec.size
    image = Image.open(path).convert("RGB")
    w, h = image.size
    if spec.resize == "center_crop":
        ratio = max(th / h, tw / w) / spec.crop_pct
        image = image.resize((round(w * ratio), round(h * ratio)), Image.BILINEAR)
        left, top = (image.width - tw) // 2, (image.height - th) // 2
        image = image.crop((left, top, left + tw, top + th))
    else:
        image = image.resize((tw, th), Image.BILINEAR)
    x = np.asarray(image, np.float32) * spec.scale
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return x.transpose(2, 0, 1)[None]


def session(model_path: Path, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def reference_loop(paths: list[Path], model_path: Path, card: ModelCard) -> float:
    """Images per second of the sequential reference loop."""
    sess = session(model_path, None)
    name = sess.get_inputs()[0].name
    start = time.perf_counter()
    for path in paths:
        sess.run(None, {name: pillow_preprocess(path, card)})
    return len(paths) / (time.perf_counter() - start)


def limit(paths: list[Path], model_path: Path, card: ModelCard, cores: int | None = None) -> tuple[float, float, float]:
    """(limit img/s, single-thread preprocess s/img, single-thread model s/img)."""
    cores = cores or len(os.sched_getaffinity(0))
    sess = session(model_path, 1)
    name = sess.get_inputs()[0].name
    sample = paths[: min(len(paths), 60)]
    t_pre = per_item(lambda p: pillow_preprocess(p, card), sample)
    x = pillow_preprocess(sample[0], card)
    sess.run(None, {name: x})  # warm-up
    t_model = per_item(lambda _: sess.run(None, {name: x}), sample)
    return cores / (t_pre + t_model), t_pre, t_model


def per_item(fn: Callable[[Path], object], items: list[Path]) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items)
