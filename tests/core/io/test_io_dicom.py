"""DICOM on the test files pydicom ships (a real CT series, a CR in MONOCHROME1, RT dose, colour), plus
series built from CT_small whose slices say where they belong."""

import io
import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from fovea.core.io import Image, Limits, Volume, read_dicom, read_dicom_series, read_input
from fovea.errors import InputError, LimitExceeded

CT = get_testdata_file("CT_small.dcm", download=False)
DICOMDIR_TESTS = Path(CT).parent / "dicomdirtests"
CT_SERIES = sorted((DICOMDIR_TESTS / "98892001" / "CT5N").iterdir())  # 5 real slices, 2.5 mm apart
CR_MONOCHROME1 = DICOMDIR_TESTS / "77654033" / "CR1" / "6154"


def dicom_bytes(ds):
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_series(count=5, *, orientation=(1, 0, 0, 0, 1, 0), position=lambda k: (0, 0, 2.5 * k)):
    """`count` slices of CT_small; slice k is filled with stored value 100*k and sits at position(k).

    InstanceNumber deliberately disagrees with the position. Returned shuffled, as (name, bytes).
    """
    files = []
    for k in range(count):
        ds = pydicom.dcmread(CT)
        ds.PixelData = np.full((ds.Rows, ds.Columns), 100 * k, np.int16).tobytes()
        ds.ImageOrientationPatient = list(orientation)
        ds.ImagePositionPatient = list(position(k))
        ds.InstanceNumber = count - k
        files.append((f"slice{k}.dcm", dicom_bytes(ds)))
    random.Random(1).shuffle(files)
    return files


def read_series(files):
    return read_dicom_series([data for _, data in files], names=[name for name, _ in files])


def test_single_ct_slice_is_an_image():
    ds = pydicom.dcmread(CT)
    image = read_input(CT)
    assert isinstance(image, Image) and image.pixels.shape == (128, 128, 3) and image.name == "CT_small.dcm"
    assert (image.pixels[..., 0] == image.pixels[..., 2]).all()
    raw = ds.pixel_array.astype(float)
    np.testing.assert_allclose(image.pixels[..., 0], np.rint((raw - raw.min()) * 255 / np.ptp(raw)), atol=1)


def test_rescale_slope_and_intercept_give_scanner_units():
    ds = pydicom.dcmread(CT)
    raw = ds.pixel_array.astype(np.float32)
    hounsfield = read_dicom_series([CT])
    assert isinstance(hounsfield, Volume) and hounsfield.size == (1, 128, 128)
    np.testing.assert_array_equal(hounsfield.voxels[0], raw * 1 - 1024)  # CT_small: slope 1, intercept -1024
    assert hounsfield.spacing[1:] == pytest.approx((0.661468, 0.661468))
    ds.RescaleSlope, ds.RescaleIntercept = 2.5, -100
    np.testing.assert_allclose(read_dicom_series([dicom_bytes(ds)]).voxels[0], raw * 2.5 - 100)


def test_monochrome1_is_inverted_so_high_values_are_bright():
    ds = pydicom.dcmread(CR_MONOCHROME1)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BitsStored == 12
    raw = ds.pixel_array.astype(np.float32)
    volume = read_dicom_series([CR_MONOCHROME1])
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    np.testing.assert_allclose(volume.voxels[0], (4095 - raw) * slope + intercept, rtol=1e-6)
    inverted = read_input(CR_MONOCHROME1).pixels[..., 0].astype(int)
    ds.PhotometricInterpretation = "MONOCHROME2"
    plain = read_input(dicom_bytes(ds)).pixels[..., 0].astype(int)
    np.testing.assert_allclose(inverted, 255 - plain, atol=1)


def test_a_real_ct_series_is_ordered_along_the_slice_normal():
    files = list(CT_SERIES)
    random.Random(3).shuffle(files)
    volume = read_dicom_series(files)
    # ImagePositionPatient z runs 8.76 (InstanceNumber 6) down to -1.24 (InstanceNumber 10): ascending z first.
    assert volume.slice_names == ["3353", "3023", "2693", "2392", "2062"]
    assert volume.name == "3353" and volume.size == (5, 16, 16)
    assert volume.spacing == pytest.approx((2.5, 0.488281, 0.488281))
    for k, name in enumerate(volume.slice_names):
        ds = pydicom.dcmread(DICOMDIR_TESTS / "98892001" / "CT5N" / name)
        np.testing.assert_array_equal(volume.voxels[k], ds.pixel_array.astype(np.float32) - 1024)


def test_built_series_is_ordered_by_position_not_by_file_order_or_instance_number():
    volume = read_series(make_series())
    assert volume.size == (5, 128, 128)
    assert [float(volume.voxels[k].mean()) for k in range(5)] == [-1024, -924, -824, -724, -624]
    assert volume.slice_names == [f"slice{k}.dcm" for k in range(5)]
    assert volume.spacing[0] == pytest.approx(2.5)


def test_series_order_follows_the_normal_of_the_orientation():
    flipped = read_series(make_series(orientation=(1, 0, 0, 0, -1, 0)))  # normal is -z: larger z first
    assert flipped.slice_names == [f"slice{k}.dcm" for k in reversed(range(5))]
    # Coronal slices: rows along x, columns along -z, normal +y. The slices step along y by 3 mm; their
    # z wobbles, which must not matter.
    coronal = read_series(
        make_series(orientation=(1, 0, 0, 0, 0, -1), position=lambda k: (0, 3.0 * k, [5, -7, 2, 0, 9][k]))
    )
    assert coronal.slice_names == [f"slice{k}.dcm" for k in range(5)]
    assert coronal.spacing[0] == pytest.approx(3.0)


def test_series_falls_back_to_instance_number_without_positions():
    files = []
    for name, data in make_series(3):
        ds = pydicom.dcmread(io.BytesIO(data))
        del ds.ImagePositionPatient
        files.append((name, dicom_bytes(ds)))
    volume = read_series(files)
    assert volume.slice_names == ["slice2.dcm", "slice1.dcm", "slice0.dcm"]  # InstanceNumber = 3 - k
    assert volume.spacing[0] == pytest.approx(5.0)  # CT_small's SliceThickness


def test_multi_frame_dicom_is_a_volume():
    volume = read_input(get_testdata_file("rtdose.dcm", download=False))
    ds = pydicom.dcmread(get_testdata_file("rtdose.dcm", download=False))
    assert isinstance(volume, Volume) and volume.size == (15, 10, 10) and volume.voxels.dtype == np.float32
    np.testing.assert_array_equal(volume.voxels, ds.pixel_array.astype(np.float32))
    assert volume.spacing == pytest.approx((5.0, 10.0, 10.0))  # z from GridFrameOffsetVector
    assert volume.slice_names[14] == "rtdose.dcm#14"


def test_colour_dicom_is_an_rgb_image():
    path = get_testdata_file("examples_rgb_color.dcm", download=False)
    image = read_input(path)
    np.testing.assert_array_equal(image.pixels, pydicom.dcmread(path).pixel_array)
    palette = read_input(get_testdata_file("examples_palette.dcm", download=False))
    assert palette.pixels.shape == (350, 800, 3)
    assert (palette.pixels[..., 0] != palette.pixels[..., 1]).any()  # the colour LUT was applied


def test_series_errors_name_the_file():
    files = make_series(2)
    small = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False))
    small.SeriesInstanceUID = pydicom.dcmread(io.BytesIO(files[0][1])).SeriesInstanceUID
    with pytest.raises(InputError, match=r"^mr.dcm: slice is 64x64 pixels but a.dcm is 128x128"):
        read_dicom_series([files[0][1], dicom_bytes(small)], names=["a.dcm", "mr.dcm"])
    other = pydicom.dcmread(CT)
    other.SeriesInstanceUID = "1.2.3.4"
    with pytest.raises(InputError, match="different series"):
        read_dicom_series([files[0][1], dicom_bytes(other)])
    with pytest.raises(InputError, match=r"^b.dcm: not a DICOM image"):
        read_dicom_series([files[0][1], b"not dicom at all" * 20], names=["a.dcm", "b.dcm"])
    no_pixels = pydicom.dcmread(CT)
    del no_pixels.PixelData
    with pytest.raises(InputError, match=r"^c.dcm: DICOM file has no pixel data$"):
        read_dicom_series([dicom_bytes(no_pixels)], names=["c.dcm"])
    with pytest.raises(InputError, match="multi-frame"):
        read_dicom_series([get_testdata_file("rtdose.dcm", download=False)])
    with pytest.raises(InputError, match="file not found"):
        read_dicom_series(["/nonexistent/slice.dcm"])
    with pytest.raises(InputError, match="at least one"):
        read_dicom_series([])
    with pytest.raises(LimitExceeded, match="over the limit of 1"):
        read_dicom_series([d for _, d in files], limits=Limits(max_files=1))
    with pytest.raises(TypeError):
        read_dicom_series(files[0][1])


def test_broken_and_oversized_dicom():
    with pytest.raises(InputError, match=r"^MR_truncated.dcm: "):
        read_input(get_testdata_file("MR_truncated.dcm", download=False))
    with pytest.raises(LimitExceeded, match="128x128 pixels, over the limit of 1000"):
        read_dicom(Path(CT).read_bytes(), name="ct", limits=Limits(max_pixels=1000))
    with pytest.raises(LimitExceeded, match="15x10x10 voxels"):
        read_input(get_testdata_file("rtdose.dcm", download=False), limits=Limits(max_voxels=1000))
