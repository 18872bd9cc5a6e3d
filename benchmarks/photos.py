"""A benchmark photo set: ~1000 px JPEGs made from scikit-image's bundled photos (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_photos(out_dir: Path, count: int = 200, long_side: int = 1000, seed: int = 0) -> list[Path]:
    """`count` distinct JPEGs (random crops, flips and scales of real photos), reused when already there."""
    from skimage import data

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"photo_{i:04d}.jpg" for i in range(count)]
    if all(p.exists() for p in paths):
        return paths
    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), data.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    for i, path in enumerate(paths):
        photo = sources[i % len(sources)]
        h, w = photo.shape[:2]
        ch, cw = int(h * rng.uniform(0.7, 1.0)), int(w * rng.uniform(0.7, 1.0))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = photo[y : y + ch, x : x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        scale = long_side * rng.uniform(0.9, 1.1) / max(ch, cw)
        image = Image.fromarray(np.ascontiguousarray(crop)).resize(
            (round(cw * scale), round(ch * scale)), Image.BICUBIC
        )
        image.save(path, quality=90)
    return paths
