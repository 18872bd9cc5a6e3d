"""What readers produce: a 2-D `Image` or a 3-D `Volume`, always with their original geometry."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class Image:
    """An RGB image ready for preprocessing.

    `pixels` is HxWx3 uint8 RGB. It may be smaller than the original when a reader decoded a large JPEG at
    reduced DCT scale for a small network input; `original_size` is always the file's own (height, width),
    and predictions are mapped back to it.
    """

    pixels: np.ndarray
    name: str = ""
    original_size: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if self.original_size == (0, 0):
            self.original_size = (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per decoded pixel, (y, x); (1, 1) unless decoded at reduced scale."""
        h, w = self.pixels.shape[:2]
        return self.original_size[0] / h, self.original_size[1] / w


@dataclass(slots=True)
class Volume:
    """A 3-D scan: `voxels` (depth, height, width) float32 in the scanner's units (e.g. HU for CT).

    `spacing` is (z, y, x) in millimetres. `slice_names` names each slice (DICOM file names, in slice
    order; `name#index` for NIfTI), so results can be reported per slice. `affine` is the 4x4 map from voxel
    index (x, y, z) = (width, height, depth) to scanner millimetres (RAS), when the files gave one (NIfTI, a
    DICOM series with positions), so a mask written for the volume lands where the scan is.
    """

    voxels: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    name: str = ""
    slice_names: list[str] = field(default_factory=list)
    affine: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.slice_names:
            self.slice_names = [f"{self.name}#{i}" for i in range(self.voxels.shape[0])]

    @property
    def size(self) -> tuple[int, int, int]:
        d, h, w = self.voxels.shape
        return int(d), int(h), int(w)

    def to_uint8(self) -> np.ndarray:
        """The volume scaled to 0..255 over its own range (what a 2-D model trained on PNG slices expects)."""
        lo, hi = float(self.voxels.min()), float(self.voxels.max())
        if hi <= lo:
            return np.zeros(self.voxels.shape, np.uint8)
        return ((self.voxels - lo) * (255.0 / (hi - lo))).round().astype(np.uint8)

    def slice_image(self, index: int) -> Image:
        """One slice as an RGB Image (gray replicated), named after the slice."""
        plane = self.to_uint8()[index]
        return Image(np.repeat(plane[:, :, None], 3, axis=2), name=self.slice_names[index])
