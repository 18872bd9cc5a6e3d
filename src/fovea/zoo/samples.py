"""Sample photos for trying models: scikit-image's bundled images written as JPEG and PNG."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def build(folder: Path) -> None:
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        pixels = getattr(data, name)()
        Image.fromarray(pixels).save(folder / f"{name}.jpg", quality=92)
        Image.fromarray(pixels).save(folder / f"{name}.png")
