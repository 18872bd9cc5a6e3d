"""DICOM (pydicom): one file to an `Image` (or a `Volume` when multi-frame), a series of files to a `Volume`.

Grayscale values are in scanner units: stored values through the Modality LUT Sequence when there is one
(pydicom's `apply_modality_lut`), else times RescaleSlope plus RescaleIntercept, read from the data set or,
in an enhanced multi-frame file, from its shared or per-frame Pixel Value Transformation (Hounsfield units for
CT). MONOCHROME1 (low values bright) is inverted over the stored bit range, so that high values are bright as
in MONOCHROME2 and slices of one series stay comparable.

A deflated file (Deflated Explicit VR Little Endian) is inflated here, within `Limits.max_decoded_bytes`,
before pydicom sees it: pydicom itself would inflate the whole data set at once, however large.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fovea.core.io.arrays import image_from_array, window_to_uint8
from fovea.core.io.limits import DEFAULT_LIMITS, Inflater, Limits, check_bytes, check_decoded, label, read_file
from fovea.core.io.media import Image, Volume
from fovea.errors import InputError, LimitExceeded

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_DEFLATED = b"1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian
_META_START = 132  # the 128-byte preamble and "DICM"
Source = bytes | str | Path


def read_dicom(
    data: bytes,
    *,
    name: str = "",
    limits: Limits = DEFAULT_LIMITS,
    window: tuple[float, float] | None = None,
) -> Image | Volume:
    """One DICOM file.

    A single grayscale frame gives an `Image`: scanner values scaled to 0..255 over their own range, or over
    `window` (low, high) when given, so that one value gets one grey level on every file. A multi-frame
    grayscale file gives a `Volume` in scanner units, and a colour file (RGB, YBR, palette) an `Image` of its
    first frame.
    """
    check_bytes(data, name, limits)
    ds = _dataset(data, name, limits)
    frames = _check_size(ds, name, limits)
    if _is_colour(ds):
        pixels = _decode(ds, name)
        if str(ds.get("PhotometricInterpretation", "")).upper().startswith("PALETTE"):
            from pydicom.pixels import apply_color_lut

            pixels = apply_color_lut(pixels, ds)
        return image_from_array(pixels[0] if frames > 1 else pixels, name)
    values = scanner_values(ds, name)
    if frames > 1:
        return Volume(values, (_frame_spacing(ds), *_pixel_spacing(ds)), name=name)
    return image_from_array(values if window is None else window_to_uint8(values, window), name)


def read_dicom_series(
    sources: Sequence[Source],
    *,
    names: Sequence[str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Volume:
    """The slices of one series (single-frame grayscale files) as a `Volume`.

    Slices are ordered by ImagePositionPatient projected on the slice normal (the cross product of the
    first slice's ImageOrientationPatient rows), ascending; by InstanceNumber when a slice has no position.
    Spacing is (z from the positions, y and x from PixelSpacing). `names` (default: file names, or
    `slice<i>.dcm` for bytes) name the slices; `Volume.slice_names` lists them in slice order.
    """
    if isinstance(sources, (bytes, str, Path)):
        raise TypeError("read_dicom_series takes a list of files or byte strings")
    sources = list(sources)
    if not sources:
        raise InputError("a DICOM series needs at least one file")
    if len(sources) > limits.max_files:
        raise LimitExceeded(f"a DICOM series of {len(sources)} files is over the limit of {limits.max_files}")
    names = list(names) if names is not None else [_name_of(s, i) for i, s in enumerate(sources)]
    if len(names) != len(sources):
        raise ValueError(f"{len(names)} names for {len(sources)} DICOM files")
    datasets = [_series_slice(source, name, limits) for source, name in zip(sources, names, strict=True)]
    _check_one_series(datasets, names, limits)
    order, positions = _slice_order(datasets)
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    voxels = np.empty((len(order), rows, cols), np.float32)
    for k, i in enumerate(order):
        voxels[k] = scanner_values(datasets[i], names[i])
    first = datasets[order[0]]
    z = _median_step(positions) if positions is not None else 0.0
    spacing = (z or _slice_thickness(first), *_pixel_spacing(first))
    return Volume(
        voxels,
        spacing,
        name=names[order[0]],
        slice_names=[names[i] for i in order],
        affine=_affine(first, spacing) if positions is not None else None,
    )


def scanner_values(ds: Any, name: str) -> np.ndarray:
    """A grayscale dataset's pixels as float32 scanner units: MONOCHROME1 inverted, then the modality
    transformation (LUT, or slope and intercept, per frame where an enhanced file gives them per frame)."""
    pixels = _decode(ds, name)
    if ds.get("ModalityLUTSequence"):
        from pydicom.pixels import apply_modality_lut

        try:
            values = np.asarray(apply_modality_lut(pixels, ds), np.float32)
        except Exception as exc:  # a malformed LUT descriptor or data
            raise InputError(f"{label(name)}: cannot apply the DICOM Modality LUT ({_why(exc)})") from None
        return _invert_monochrome1(ds, values, stored=False)
    values = _invert_monochrome1(ds, pixels.astype(np.float32), stored=True)
    slope, intercept = _rescale(ds, values.shape[0] if values.ndim == 3 else 0)
    if np.any(slope != 1.0):
        values *= slope
    if np.any(intercept != 0.0):
        values += intercept
    return values


def _invert_monochrome1(ds: Any, values: np.ndarray, *, stored: bool) -> np.ndarray:
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        lo, hi = _stored_range(ds, values) if stored else (float(values.min()), float(values.max()))
        np.subtract(lo + hi, values, out=values)
    return values


def _rescale(ds: Any, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """RescaleSlope and RescaleIntercept, as scalars or (frames, 1, 1) arrays for a multi-frame file.

    A classic file has them in the data set. An enhanced multi-frame file (enhanced CT/MR) has them in a Pixel
    Value Transformation item of its per-frame or shared functional groups; per frame they may differ.
    """
    shared = _functional_item(ds, "SharedFunctionalGroupsSequence", 0)
    per_frame = [_functional_item(ds, "PerFrameFunctionalGroupsSequence", i) for i in range(frames)]
    if frames and any(item is not None for item in per_frame):
        items = [item if item is not None else shared if shared is not None else ds for item in per_frame]
        slopes = np.array([_number(item, "RescaleSlope", 1.0) for item in items], np.float32)
        intercepts = np.array([_number(item, "RescaleIntercept", 0.0) for item in items], np.float32)
        return slopes[:, None, None], intercepts[:, None, None]
    source = ds if "RescaleSlope" in ds or "RescaleIntercept" in ds or shared is None else shared
    slope, intercept = _number(source, "RescaleSlope", 1.0), _number(source, "RescaleIntercept", 0.0)
    return np.float32(slope), np.float32(intercept)  # type: ignore[return-value]


def _functional_item(ds: Any, sequence: str, index: int) -> Any:
    """The Pixel Value Transformation item of one functional group (enhanced multi-frame files), if any."""
    try:
        item = getattr(ds, sequence)[index].PixelValueTransformationSequence[0]
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    return item if "RescaleSlope" in item or "RescaleIntercept" in item else None


def _dataset(data: bytes, name: str, limits: Limits) -> Any:
    import pydicom

    try:
        ds = _deflated_dataset(data, name, limits)
        if ds is None:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)  # force: also files without the preamble
    except InputError:
        raise
    except Exception as exc:  # pydicom raises many exception types on hostile bytes
        raise InputError(f"{label(name)}: not a readable DICOM file ({_why(exc)})") from None
    if not any(tag in ds for tag in _PIXEL_TAGS):
        if data[128:132] == b"DICM":
            raise InputError(f"{label(name)}: DICOM file has no pixel data")
        # force=True turns arbitrary bytes into a dataset of junk elements; none of them is pixel data.
        raise InputError(f"{label(name)}: not a DICOM image (no DICM marker and no pixel data)")
    if "TransferSyntaxUID" not in ds.file_meta:
        # No file meta (no preamble either): pydicom read the data set's encoding from the bytes, but
        # needs it spelled out as a transfer syntax to decode the pixels.
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian
            if implicit
            else (pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian)
        )
    return ds


def _deflated_dataset(data: bytes, name: str, limits: Limits) -> Any:
    """The data set of a deflated file, inflated within the byte budget; None for any other file."""
    import pydicom

    if data[128:132] != b"DICM":  # without file meta there is no transfer syntax, and pydicom inflates nothing
        return None
    meta_end = _META_START + 12  # (0002,0000) UL 4 <group length>, the file meta's first element
    if data[_META_START : _META_START + 6] != b"\x02\x00\x00\x00UL":
        if _DEFLATED in data[:4096]:
            raise InputError(f"{label(name)}: deflated DICOM file without its file meta group length")
        return None
    meta_end += struct.unpack("<I", data[_META_START + 8 : meta_end])[0]
    if _DEFLATED not in data[:meta_end]:
        return None
    meta = pydicom.dcmread(io.BytesIO(data[:meta_end]), force=True).file_meta  # the meta alone inflates nothing
    if meta.get("TransferSyntaxUID") != pydicom.uid.DeflatedExplicitVRLittleEndian:
        return None
    inflater = Inflater(-15, limits.max_decoded_bytes, f"{label(name)} (deflated DICOM)")
    body = inflater.feed(data[meta_end:])
    inflater.check_complete()
    ds = pydicom.dcmread(io.BytesIO(body), force=True)  # explicit VR little endian, without meta
    ds.file_meta = meta
    return ds


def _check_size(ds: Any, name: str, limits: Limits) -> int:
    """Check rows, columns and frames from the header, before decoding; returns the number of frames."""
    try:
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        raise InputError(f"{label(name)}: DICOM header has invalid Rows, Columns or NumberOfFrames") from None
    samples, bits = int(ds.get("SamplesPerPixel") or 1), int(ds.get("BitsAllocated") or 8)
    check_decoded(cols, rows, name, limits, samples=samples, item_size=max(1, -(-bits // 8)))
    if frames > limits.max_frames:
        raise LimitExceeded(f"{label(name)} has {frames} frames, over the limit of {limits.max_frames}")
    if frames * rows * cols > limits.max_voxels:
        raise LimitExceeded(f"{label(name)}: {frames}x{rows}x{cols} voxels, over the limit of {limits.max_voxels}")
    return max(frames, 1)


def _decode(ds: Any, name: str) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as exc:  # missing codec plugins, truncated or inconsistent pixel data
        raise InputError(f"{label(name)}: cannot decode DICOM pixel data ({_why(exc)})") from None


def _is_colour(ds: Any) -> bool:
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    return int(ds.get("SamplesPerPixel") or 1) > 1 or photometric.startswith("PALETTE")


def _series_slice(source: Source, name: str, limits: Limits) -> Any:
    data = read_file(source, limits, name) if isinstance(source, (str, Path)) else source
    check_bytes(data, name, limits)
    ds = _dataset(data, name, limits)
    if _check_size(ds, name, limits) > 1:
        raise InputError(f"{name}: a multi-frame DICOM file cannot be one slice of a series")
    if _is_colour(ds):
        raise InputError(f"{name}: a colour DICOM image cannot be a slice of a volume")
    return ds


def _check_one_series(datasets: list[Any], names: list[str], limits: Limits) -> None:
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    for ds, name in zip(datasets, names, strict=True):
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise InputError(
                f"{name}: slice is {ds.Rows}x{ds.Columns} pixels but {names[0]} is {rows}x{cols}; "
                "the slices of a series must have one size"
            )
    if len(datasets) * rows * cols > limits.max_voxels:
        raise LimitExceeded(f"the DICOM series is over the limit of {limits.max_voxels} voxels")
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets} - {""}
    if len(series) > 1:
        raise InputError("the DICOM files belong to different series (SeriesInstanceUID differs)")


def _slice_order(datasets: list[Any]) -> tuple[list[int], list[float] | None]:
    """Slice indices in order along the normal, and the sorted positions (None when falling back)."""
    normal = _normal(datasets[0])
    positions = [_position(ds, normal) for ds in datasets]
    if all(p is not None for p in positions):
        order = sorted(range(len(datasets)), key=lambda i: (positions[i], i))
        return order, [positions[i] for i in order]  # type: ignore[misc]
    instances = [_number(ds, "InstanceNumber", float("inf")) for ds in datasets]
    return sorted(range(len(datasets)), key=lambda i: (instances[i], i)), None


def _affine(first: Any, spacing: tuple[float, float, float]) -> np.ndarray | None:
    """Voxel (column, row, slice) to RAS millimetres, NIfTI's convention, from the first slice's position and
    orientation (DICOM's patient axes are LPS: x and y change sign). None without an orientation."""
    cosines = _floats(first.get("ImageOrientationPatient"), 6)
    origin = _floats(first.get("ImagePositionPatient"), 3)
    if cosines is None or origin is None:
        return None
    dz, dy, dx = spacing
    columns, rows = cosines[:3], cosines[3:]  # direction of increasing column index, then of increasing row index
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = columns * dx, rows * dy, np.cross(columns, rows) * dz, origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _normal(ds: Any) -> np.ndarray:
    cosines = _floats(ds.get("ImageOrientationPatient"), 6)
    if cosines is None:
        return np.array([0.0, 0.0, 1.0])
    return np.cross(cosines[:3], cosines[3:])


def _position(ds: Any, normal: np.ndarray) -> float | None:
    position = _floats(ds.get("ImagePositionPatient"), 3)
    return None if position is None else float(np.dot(normal, position))


def _median_step(positions: list[float]) -> float:
    steps = np.abs(np.diff(positions))
    return float(np.median(steps)) if steps.size else 0.0


def _pixel_spacing(ds: Any) -> tuple[float, float]:
    for source in (ds, _pixel_measures(ds)):
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            spacing = _floats(source.get(keyword) if source is not None else None, 2)
            if spacing is not None and min(spacing) > 0:
                return float(spacing[0]), float(spacing[1])
    return 1.0, 1.0


def _frame_spacing(ds: Any) -> float:
    """Distance between the frames of a multi-frame file (RT dose grids, enhanced CT/MR)."""
    offsets = ds.get("GridFrameOffsetVector")
    if offsets is not None and len(offsets) > 1:
        step = _median_step([float(v) for v in offsets])
        if step > 0:
            return step
    return _slice_thickness(ds)


def _slice_thickness(ds: Any) -> float:
    for source in (ds, _pixel_measures(ds)):
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = _number(source, keyword, 0.0) if source is not None else 0.0
            if value > 0:
                return value
    return 1.0


def _pixel_measures(ds: Any) -> Any:
    """The shared PixelMeasuresSequence item of an enhanced multi-frame file, if any."""
    try:
        return ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    except (AttributeError, IndexError, KeyError):
        return None


def _stored_range(ds: Any, values: np.ndarray) -> tuple[float, float]:
    bits = int(ds.get("BitsStored") or 0)
    if "PixelData" not in ds or bits <= 0:  # float pixel data has no bit range: use the data's own
        return float(values.min()), float(values.max())
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return -float(2 ** (bits - 1)), float(2 ** (bits - 1) - 1)
    return 0.0, float(2**bits - 1)


def _number(ds: Any, keyword: str, default: float) -> float:
    try:
        value = ds.get(keyword)
        return default if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return default


def _floats(value: Any, count: int) -> np.ndarray | None:
    try:
        array = np.asarray([float(v) for v in value], float) if value is not None else None
    except (TypeError, ValueError):
        return None
    return array if array is not None and array.shape == (count,) and np.isfinite(array).all() else None


def _name_of(source: Source, index: int) -> str:
    return Path(source).name if isinstance(source, (str, Path)) else f"slice{index}.dcm"


def _why(exc: Exception) -> str:
    """An exception as one short line (pydicom's messages can span lines and paragraphs)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
