"""NIfTI-1/2 volumes (nibabel): read to (depth, height, width), and write masks back.

Orientation: NIfTI stores voxels with the first index i fastest and nibabel returns them as an (i, j, k)
array, i.e. (x, y, z). A `Volume` is that array with its axes reversed, (k, j, i) = (depth, height, width):
slice d is the d-th plane along the third voxel axis, its rows follow j and its columns i (the array layout
SimpleITK's GetArrayFromImage gives). The affine is not applied: nothing is resampled or turned to a
standard (RAS) orientation, so a mask written by `write_nifti` lines up voxel for voxel with the volume it
was predicted on. The file's affine (its best one: sform, else qform) is kept as `Volume.affine`, and
`write_nifti` writes it back, so the mask also carries the scan's position and rotation; a Volume without
one (a multi-frame DICOM file, arrays) is written with a diagonal affine made from its spacing.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fovea.core.io.limits import DEFAULT_LIMITS, Limits, check_bytes, label, read_file
from fovea.core.io.media import Volume
from fovea.core.io.sniff import gunzip_head
from fovea.errors import InputError, LimitExceeded
from fovea.paths import atomic_path

_GZIP_MAGIC = b"\x1f\x8b"


def read_nifti(source: bytes | str | Path, *, name: str = "", limits: Limits = DEFAULT_LIMITS) -> Volume:
    """A NIfTI volume (.nii or .nii.gz) as float32 (depth, height, width) = the file's (z, y, x).

    scl_slope/scl_inter are applied; spacing is the header's zooms as (z, y, x). A 2-D image becomes one
    slice; a 4-D file is accepted only when its 4th dimension is 1. The header's size is checked against
    `max_voxels` before anything is decompressed.
    """
    import nibabel as nib

    if isinstance(source, (str, Path)):
        name = name or Path(source).name
        data = read_file(source, limits, name)
    else:
        data = source
        check_bytes(data, name, limits)
    compressed = data[:2] == _GZIP_MAGIC
    header = _header(gunzip_head(data) if compressed else data[:544], name)
    shape = _volume_shape(header, name, limits)
    dtype = header.get_data_dtype()
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise InputError(f"{label(name)}: NIfTI data type {dtype} is not supported (RGB or complex)")
    needed = int(header.get_data_offset()) + math.prod(header.get_data_shape()) * dtype.itemsize
    raw = _gunzip(data, needed, name) if compressed else data
    if len(raw) < needed:
        raise InputError(f"{label(name)}: truncated NIfTI file ({len(raw)} of {needed} bytes)")
    image_class = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    try:
        xyz = image_class.from_bytes(raw).get_fdata(dtype=np.float32)  # applies scl_slope / scl_inter
    except Exception as exc:  # nibabel raises assorted errors for inconsistent headers
        raise InputError(f"{label(name)}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    zooms = [float(z) if z > 0 else 1.0 for z in header.get_zooms()[:3]] + [1.0, 1.0]
    # nibabel's array is Fortran-ordered, so the reversed-axes view is C-contiguous and costs no copy.
    voxels = np.ascontiguousarray(xyz.reshape(shape, order="F").transpose(2, 1, 0))
    affine = np.asarray(header.get_best_affine(), np.float64)
    known = affine if np.isfinite(affine).all() else None
    return Volume(voxels, (zooms[2], zooms[1], zooms[0]), name=name, affine=known)


def write_nifti(
    volume: Volume | np.ndarray,
    path: str | Path | None = None,
    spacing: tuple[float, float, float] | None = None,
    affine: np.ndarray | None = None,
) -> bytes:
    """The inverse of `read_nifti`: a (depth, height, width) array or `Volume` as NIfTI-1 bytes.

    `affine` (4x4, voxel (x, y, z) to mm; default: the Volume's) places the voxels; without one, `spacing`
    (z, y, x) in mm (default: the Volume's, else 1 mm) makes a diagonal affine. To write a mask predicted on
    a volume, pass the volume's spacing and affine. The bytes are gzipped unless `path` ends in `.nii`; with
    a path they are also written there, atomically. Masks keep their integer type (bool becomes uint8, 64-bit
    integers become int32).
    """
    import nibabel as nib

    if isinstance(volume, Volume):
        array, spacing = volume.voxels, spacing or volume.spacing
        affine = affine if affine is not None else volume.affine
    else:
        array = np.asarray(volume)
    if array.ndim != 3:
        raise ValueError(f"write_nifti takes a (depth, height, width) array, got shape {array.shape}")
    sz, sy, sx = (float(s) for s in (spacing or (1.0, 1.0, 1.0)))
    if affine is None:
        affine = np.diag([sx, sy, sz, 1.0])
    elif np.shape(affine) != (4, 4):
        raise ValueError(f"write_nifti takes a 4x4 affine, got shape {np.shape(affine)}")
    # The reversed-axes view of a C-ordered array is Fortran-ordered: nibabel writes it without a copy.
    image = nib.Nifti1Image(_storable(array).transpose(2, 1, 0), np.asarray(affine, np.float64))
    image.set_qform(image.affine, code="scanner")  # both forms: readers differ in which one they trust
    image.set_sform(image.affine, code="scanner")
    image.header.set_xyzt_units("mm")
    raw = image.to_bytes()
    gzipped = path is None or not str(path).lower().endswith(".nii")
    data = gzip.compress(raw, compresslevel=6, mtime=0) if gzipped else raw
    if path is not None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return data


def _header(head: bytes, name: str) -> Any:
    """The NIfTI-1 or NIfTI-2 header from a file's first bytes (decompressed)."""
    import nibabel as nib

    if len(head) >= 348 and head[344:348] == b"n+1\x00":
        header_class, size = nib.Nifti1Header, 348
    elif len(head) >= 540 and head[4:8] == b"n+2\x00":
        header_class, size = nib.Nifti2Header, 540
    elif head[344:348] == b"ni1\x00" or head[4:8] == b"ni2\x00":
        raise InputError(f"{label(name)}: a NIfTI .hdr/.img pair is not supported; send one .nii or .nii.gz")
    else:
        raise InputError(f"{label(name)}: not a NIfTI file (no NIfTI-1 or NIfTI-2 header)")
    try:
        return header_class(binaryblock=head[:size], check=False)
    except Exception as exc:  # a header whose sizes make no sense in either byte order
        raise InputError(f"{label(name)}: corrupt NIfTI header ({exc})") from None


def _volume_shape(header: Any, name: str, limits: Limits) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in header.get_data_shape())
    while len(shape) > 3 and shape[-1] == 1:  # a 4-D (or 5-D) file with one time point
        shape = shape[:-1]
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise InputError(
            f"{label(name)}: expected a 3-D NIfTI volume, got shape {header.get_data_shape()} "
            "(a 4-D file is read only when its 4th dimension is 1)"
        )
    if min(shape) <= 0:
        raise InputError(f"{label(name)}: NIfTI volume has no voxels (shape {shape})")
    if math.prod(shape) > limits.max_voxels:
        raise LimitExceeded(f"{label(name)}: volume of {shape} voxels is over the limit of {limits.max_voxels}")
    return shape  # type: ignore[return-value]


def _gunzip(data: bytes, size: int, name: str) -> bytes:
    """At most `size` bytes of a gzip stream: the header already said how much there should be."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, size)
    except zlib.error as exc:
        raise InputError(f"{label(name)}: corrupt gzip data ({exc})") from None


def _storable(array: np.ndarray) -> np.ndarray:
    """The array in a dtype NIfTI-1 readers accept (no bool, float16 or 64-bit integers)."""
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        info = np.iinfo(np.int32)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValueError("write_nifti: 64-bit integer values do not fit in int32")
        return array.astype(np.int32)
    return array
