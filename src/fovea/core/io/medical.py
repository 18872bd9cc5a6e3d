"""DICOM (pydicom) and NIfTI (nibabel) readers.

Volumes are (depth, height, width) arrays in scanner units: DICOM pixel data with RescaleSlope and
RescaleIntercept applied (Hounsfield units for CT), NIfTI data with its scl_slope/scl_inter applied.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fovea.core.io.images import check_bytes, image_from_array
from fovea.core.io.limits import DEFAULT_LIMITS, Limits
from fovea.core.io.media import Image, Volume
from fovea.errors import InputError, LimitExceeded
from fovea.paths import atomic_path


def _dataset(data: bytes, name: str):  # -> pydicom.Dataset
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{name or 'input'}: not a readable DICOM file ({exc})") from None


def _pixels(ds, name: str, limits: Limits) -> np.ndarray:
    """Pixel data in scanner units (rescale applied; MONOCHROME1 inverted to read like MONOCHROME2)."""
    if "PixelData" not in ds:
        raise InputError(f"{name or 'input'}: DICOM file has no pixel data")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if rows * cols * frames > limits.max_voxels or rows * cols > limits.max_pixels:
        raise LimitExceeded(f"{name or 'input'}: DICOM image of {frames}x{rows}x{cols} is over the size limit")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many kinds for missing codecs or broken data
        raise InputError(f"{name or 'input'}: cannot decode DICOM pixel data ({exc})") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric.startswith("MONOCHROME"):
        pixels = pixels.astype(np.float32) * float(ds.get("RescaleSlope", 1) or 1) + float(
            ds.get("RescaleIntercept", 0) or 0
        )
        if photometric == "MONOCHROME1":
            pixels = pixels.max() + pixels.min() - pixels
    return pixels


def read_dicom(data: bytes, *, name: str = "", limits: Limits = DEFAULT_LIMITS) -> Image | Volume:
    """One DICOM file: a 2-D Image, or a Volume for a multi-frame grayscale file."""
    check_bytes(data, name, limits)
    ds = _dataset(data, name)
    pixels = _pixels(ds, name, limits)
    colour = str(ds.get("PhotometricInterpretation", "")).upper() in ("RGB", "YBR_FULL", "YBR_FULL_422")
    if colour and pixels.ndim == 3:
        return image_from_array(pixels, name)
    if pixels.ndim == 3:  # multi-frame grayscale
        spacing = _in_plane_spacing(ds)
        thickness = float(ds.get("SpacingBetweenSlices", ds.get("SliceThickness", 1)) or 1)
        return Volume(pixels.astype(np.float32), (thickness, *spacing), name=name)
    return image_from_array(pixels, name)


def read_dicom_series(
    sources: Sequence[bytes | str | Path],
    *,
    names: Sequence[str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Volume:
    """Slices of one series as a Volume, ordered along the slice normal (InstanceNumber as a fallback)."""
    if not sources:
        raise InputError("a DICOM series needs at least one file")
    if len(sources) > limits.max_files:
        raise LimitExceeded(f"a DICOM series of {len(sources)} files is over the limit of {limits.max_files}")
    names = list(names) if names else [_name_of(s, i) for i, s in enumerate(sources)]
    slices = []
    for source, name in zip(sources, names, strict=True):
        data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
        check_bytes(data, name, limits)
        ds = _dataset(data, name)
        if "PixelData" not in ds:
            raise InputError(f"{name}: not a DICOM image (no pixel data)")
        slices.append((ds, name))
    series = {str(ds.get("SeriesInstanceUID", "")) for ds, _ in slices}
    if len(series) > 1:
        raise InputError("the DICOM files belong to different series (SeriesInstanceUID differs)")
    positions = [_slice_position(ds) for ds, _ in slices]
    if all(p is not None for p in positions):
        keys = [(p, i) for i, p in enumerate(positions)]
    else:
        keys = [(_instance_number(ds, i), i) for i, (ds, _) in enumerate(slices)]
    order = sorted(range(len(slices)), key=lambda i: keys[i])
    planes = []
    for i in order:
        ds, name = slices[i]
        pixels = _pixels(ds, name, limits)
        if pixels.ndim != 2:
            raise InputError(f"{name}: a series slice must be a single 2-D grayscale frame")
        planes.append(pixels.astype(np.float32))
    shapes = {p.shape for p in planes}
    if len(shapes) > 1:
        raise InputError(f"the DICOM slices differ in size: {sorted(shapes)}")
    if len(planes) * planes[0].size > limits.max_voxels:
        raise LimitExceeded("the DICOM series is over the voxel limit")
    first = slices[order[0]][0]
    z_spacing = float(first.get("SliceThickness", 1) or 1)
    if len(order) > 1 and positions[0] is not None:
        z_spacing = abs(float(np.median(np.diff([keys[i][0] for i in order])))) or z_spacing
    return Volume(
        np.stack(planes),
        (z_spacing, *_in_plane_spacing(first)),
        name=names[order[0]],
        slice_names=[names[i] for i in order],
    )


def _name_of(source: bytes | str | Path, index: int) -> str:
    return Path(source).name if isinstance(source, (str, Path)) else f"slice{index}.dcm"


def _slice_position(ds) -> float | None:
    """Position of a slice along its normal (ImagePositionPatient projected), or None without one."""
    position = ds.get("ImagePositionPatient")
    if position is None or len(position) != 3:
        return None
    orientation = ds.get("ImageOrientationPatient")
    cosines = np.asarray(
        orientation if orientation is not None and len(orientation) == 6 else [1, 0, 0, 0, 1, 0], float
    )
    return float(np.dot(np.cross(cosines[:3], cosines[3:]), np.asarray(position, float)))


def _instance_number(ds, index: int) -> float:
    instance = ds.get("InstanceNumber")
    return float(instance) if instance is not None else float(index)


def _in_plane_spacing(ds) -> tuple[float, float]:
    spacing = ds.get("PixelSpacing")
    if spacing is not None and len(spacing) == 2:
        return float(spacing[0]), float(spacing[1])
    return 1.0, 1.0


# -- NIfTI -------------------------------------------------------------------------------------


def read_nifti(source: bytes | str | Path, *, name: str = "", limits: Limits = DEFAULT_LIMITS) -> Volume:
    """A NIfTI volume as (depth, height, width) = the file's (z, y, x), i.e. nibabel's (x, y, z) transposed.

    No reorientation to a standard space is done: slice k is the k-th plane along the third voxel axis,
    the same convention SimpleITK uses when it returns arrays.
    """
    import nibabel as nib

    if isinstance(source, (str, Path)):
        name = name or Path(source).name
        data = Path(source).read_bytes()
    else:
        data = source
    check_bytes(data, name, limits)
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, name, limits)
    try:
        image = (
            nib.Nifti1Image.from_bytes(data)
            if data[344:348] in (b"n+1\x00", b"ni1\x00")
            else nib.Nifti2Image.from_bytes(data)
        )
    except Exception as exc:  # nibabel raises assorted errors for corrupt headers
        raise InputError(f"{name or 'input'}: not a readable NIfTI file ({exc})") from None
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3:
        raise InputError(f"{name or 'input'}: expected a 3-D NIfTI volume, got shape {image.shape}")
    if int(np.prod(shape)) > limits.max_voxels:
        raise LimitExceeded(f"{name or 'input'}: volume of {shape} is over the voxel limit")
    try:
        voxels = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
    except Exception as exc:
        raise InputError(f"{name or 'input'}: truncated or corrupt NIfTI data ({exc})") from None
    zooms = [float(z) for z in image.header.get_zooms()[:3]] + [1.0] * (3 - len(image.header.get_zooms()[:3]))
    return Volume(
        np.ascontiguousarray(voxels.transpose(2, 1, 0)),
        (zooms[2], zooms[1], zooms[0]),
        name=name,
    )


def write_nifti(
    volume: Volume | np.ndarray,
    path: str | Path | None = None,
    spacing: tuple[float, float, float] | None = None,
) -> bytes:
    """The inverse of `read_nifti`: a (depth, height, width) array (or Volume) to .nii.gz bytes."""
    import nibabel as nib

    if isinstance(volume, Volume):
        spacing = spacing or volume.spacing
        array = volume.voxels
    else:
        array = np.asarray(volume)
    spacing = spacing or (1.0, 1.0, 1.0)
    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    image = nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)), affine)
    image.header.set_zooms((spacing[2], spacing[1], spacing[0]))
    data = gzip.compress(image.to_bytes(), compresslevel=6)
    if path is not None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return data


def _gunzip(data: bytes, name: str, limits: Limits) -> bytes:
    import zlib

    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limits.max_voxels * 4 + 1024)
    except zlib.error as exc:
        raise InputError(f"{name or 'input'}: corrupt gzip data ({exc})") from None
    if inflater.unconsumed_tail:
        raise LimitExceeded(f"{name or 'input'}: decompressed volume is over the size limit")
    return out
