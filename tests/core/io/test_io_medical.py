"""DICOM and NIfTI on the test files pydicom and nibabel ship, plus series built from them."""

import io
import os
import random

import nibabel as nib
import numpy as np
import pydicom
import pytest
from nibabel.testing import data_path
from pydicom.data import get_testdata_file

from fovea.core.io import (
    DEFAULT_LIMITS,
    Image,
    Volume,
    read_dicom_series,
    read_input,
    read_nifti,
    write_nifti,
)
from fovea.errors import InputError

CT = get_testdata_file("CT_small.dcm")


def dicom_bytes(ds):
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_series(count=5, *, flip_normal=False):
    """`count` slices of CT_small, slice k filled with value 100*k, at z = 2.5*k; returned shuffled."""
    files = []
    for k in range(count):
        ds = pydicom.dcmread(CT)
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.full((ds.Rows, ds.Columns), 100 * k, np.int16).tobytes()
        ds.ImageOrientationPatient = [1, 0, 0, 0, -1, 0] if flip_normal else [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 2.5 * k]
        ds.InstanceNumber = count - k  # deliberately disagrees with the position
        files.append((f"slice{k}.dcm", dicom_bytes(ds)))
    random.Random(1).shuffle(files)
    return files


def test_single_ct_slice_is_an_image_with_hounsfield_rescale():
    ds = pydicom.dcmread(CT)
    image = read_input(CT)
    assert isinstance(image, Image) and image.pixels.shape == (ds.Rows, ds.Columns, 3)
    from fovea.core.io.medical import _dataset, _pixels

    with open(CT, "rb") as handle:
        hu = _pixels(_dataset(handle.read(), "ct"), "ct", DEFAULT_LIMITS)
    expected = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(hu, expected)


def test_monochrome1_is_inverted():
    ds = pydicom.dcmread(CT)
    plain = read_input(dicom_bytes(ds)).pixels[:, :, 0].astype(int)
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = read_input(dicom_bytes(ds)).pixels[:, :, 0].astype(int)
    np.testing.assert_allclose(inverted, 255 - plain, atol=1)


def test_series_is_ordered_along_the_slice_normal():
    files = make_series()
    volume = read_dicom_series([data for _, data in files], names=[name for name, _ in files])
    assert isinstance(volume, Volume) and volume.size == (5, 128, 128)
    assert [float(volume.voxels[k].mean()) for k in range(5)] == [0, 100, 200, 300, 400]
    assert volume.slice_names == [f"slice{k}.dcm" for k in range(5)]
    assert volume.spacing[0] == pytest.approx(2.5)


def test_series_normal_direction_is_respected():
    files = make_series(flip_normal=True)  # normal is -z: larger z comes first
    volume = read_dicom_series([data for _, data in files], names=[name for name, _ in files])
    assert volume.slice_names == [f"slice{k}.dcm" for k in reversed(range(5))]


def test_series_falls_back_to_instance_number():
    files = []
    for name, data in make_series(3):
        ds = pydicom.dcmread(io.BytesIO(data))
        del ds.ImagePositionPatient
        files.append((name, dicom_bytes(ds)))
    volume = read_dicom_series([d for _, d in files], names=[n for n, _ in files])
    assert volume.slice_names == ["slice2.dcm", "slice1.dcm", "slice0.dcm"]  # InstanceNumber = 3 - k


def test_series_errors():
    files = make_series(2)
    other = pydicom.dcmread(CT)
    other.SeriesInstanceUID = "1.2.3.4"
    with pytest.raises(InputError, match="different series"):
        read_dicom_series([files[0][1], dicom_bytes(other)])
    with pytest.raises(InputError, match=r"not a readable DICOM|no pixel data"):
        read_dicom_series([files[0][1], b"not dicom at all" * 20], names=["a.dcm", "b.dcm"])
    with pytest.raises(InputError, match="at least one"):
        read_dicom_series([])


def test_nifti_orientation_and_spacing(tmp_path):
    xyz = np.zeros((4, 5, 6), np.float32)  # nibabel order (x, y, z)
    xyz[1, 2, 3] = 42
    image = nib.Nifti1Image(xyz, np.diag([0.5, 0.75, 3.0, 1]))
    path = tmp_path / "known.nii.gz"
    nib.save(image, path)
    volume = read_input(path)
    assert isinstance(volume, Volume)
    assert volume.size == (6, 5, 4)  # (z, y, x)
    assert volume.voxels[3, 2, 1] == 42
    assert volume.spacing == pytest.approx((3.0, 0.75, 0.5))
    assert volume.slice_names[3] == "known.nii.gz#3"


def test_nifti_round_trip_and_bundled_files(tmp_path):
    anatomical = read_nifti(os.path.join(data_path, "anatomical.nii"))
    assert anatomical.voxels.ndim == 3
    again = read_nifti(write_nifti(anatomical, tmp_path / "copy.nii.gz"), name="copy")
    np.testing.assert_allclose(again.voxels, anatomical.voxels)
    assert again.spacing == pytest.approx(anatomical.spacing)
    assert (tmp_path / "copy.nii.gz").exists()
    with pytest.raises(InputError, match="expected a 3-D NIfTI volume"):
        read_nifti(os.path.join(data_path, "example4d.nii.gz"))


def test_corrupt_nifti():
    with open(os.path.join(data_path, "anatomical.nii"), "rb") as handle:
        data = handle.read()
    with pytest.raises(InputError, match="NIfTI"):
        read_input(data[:400], name="cut.nii")
