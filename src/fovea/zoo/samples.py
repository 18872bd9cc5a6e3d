"""Sample photos for trying models: scikit-image's bundled images written as JPEG and PNG."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from PIL import Image

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def build(folder: Path) -> str:
    """Write the photos into a fresh folder beside `folder`, then swap it in (no half-written folder)."""
    from skimage import data

    folder.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    fresh.chmod(0o755)  # mkdtemp makes it private
    try:
        for name in PHOTOS:
            pixels = getattr(data, name)()
            Image.fromarray(pixels).save(fresh / f"{name}.jpg", quality=92)
            Image.fromarray(pixels).save(fresh / f"{name}.png")
        if folder.exists():
            shutil.rmtree(folder)
        fresh.rename(folder)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return f"{len(PHOTOS)} photos, JPEG and PNG"
