"""Images to network tensors, driven by the card's input spec.

Scans (volumes, DICOM frames) first become 0..255: over the card's `input.window` when it has one, so every scan
of one modality reaches the network with the same intensities, else over each scan's own range.
"""

from __future__ import annotations

import numpy as np

from fovea.core.card import InputSpec
from fovea.core.colour import from_rgb
from fovea.core.geometry import Geometry, resize_image, resize_volume
from fovea.core.io.arrays import window_to_uint8
from fovea.core.io.media import Image, Volume


class Preprocessor:
    """Turns `Image`s into one batch tensor (and `Volume`s into 3-D inputs) for an `InputSpec`."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        channels = spec.channels
        # (pixels * scale - mean) / std folded into one multiply-add per channel.
        std = np.broadcast_to(np.asarray(spec.std, np.float32), (channels,))
        mean = np.broadcast_to(np.asarray(spec.mean, np.float32), (channels,))
        self._mul = (np.float32(spec.scale) / std).astype(np.float32)
        self._add = (-mean / std).astype(np.float32)
        self.dtype = np.dtype(spec.dtype)
        self.window = spec.window.bounds if spec.window is not None else None  # scanner values to 0..255

    @property
    def min_decode_size(self) -> tuple[int, int]:
        """The smallest decoded size that loses nothing for this input (a hint for JPEG DCT scaling)."""
        h, w = self.spec.size[-2:]
        if self.spec.resize == "center_crop":
            return round(h / self.spec.crop_pct), round(w / self.spec.crop_pct)
        return h, w

    def batch_shape(self, n: int) -> tuple[int, ...]:
        h, w = self.spec.size[-2:]
        c = self.spec.channels
        return (n, h, w, c) if self.spec.layout == "NHWC" else (n, c, h, w)

    def resize(self, image: Image) -> tuple[np.ndarray, Geometry]:
        """Colour-convert and resize one image; the geometry maps back to the image's ORIGINAL size."""
        spec = self.spec
        pixels = image.pixels if spec.color == "RGB" else from_rgb(image.pixels, spec.color)
        resized, geometry = resize_image(
            pixels, spec.size[-2:], spec.resize, crop_pct=spec.crop_pct, pad_value=spec.pad_value
        )
        if resized.ndim == 2:  # OpenCV drops a single channel axis
            resized = resized[:, :, None]
        fy, fx = image.scale
        if (fy, fx) != (1.0, 1.0):
            geometry = geometry.rescaled(fy, fx, image.original_size)
        return resized, geometry

    def write(self, resized: np.ndarray, out: np.ndarray) -> None:
        """Normalise one resized HxWxC uint8 image into `out` (one batch slot), in the spec's layout."""
        if self.dtype == np.uint8:
            values = resized
        else:
            values = resized.astype(np.float32)
            values *= self._mul
            values += self._add
        out[...] = values if self.spec.layout == "NHWC" else values.transpose(2, 0, 1)

    def __call__(self, images: list[Image]) -> tuple[np.ndarray, list[Geometry]]:
        """A batch tensor for `images` and one geometry per image."""
        batch = np.empty(self.batch_shape(len(images)), self.dtype)
        geometries = []
        for i, image in enumerate(images):
            resized, geometry = self.resize(image)
            self.write(resized, batch[i])
            geometries.append(geometry)
        return batch, geometries

    def gray_levels(self, volume: Volume) -> np.ndarray:
        """The volume as uint8 0..255: over the card's window, else over the volume's own range."""
        return volume.to_uint8() if self.window is None else window_to_uint8(volume.voxels, self.window)

    def slice_images(self, volume: Volume) -> list[Image]:
        """Every slice as an RGB `Image` (gray replicated) for a 2-D model, named after the slice."""
        levels = self.gray_levels(volume)
        return [
            Image(np.repeat(plane[:, :, None], 3, axis=2), name=name)
            for plane, name in zip(levels, volume.slice_names, strict=True)
        ]

    def volume(self, volume: Volume) -> np.ndarray:
        """A (1, C, D, H, W) tensor for a 3-D model: the volume as 0..255 gray levels, resized, normalised."""
        voxels = resize_volume(self.gray_levels(volume).astype(np.float32), self.spec.size)
        values = voxels * self._mul[0] + self._add[0]
        values = np.repeat(values[None], self.spec.channels, axis=0)
        return values[None].astype(self.dtype)
