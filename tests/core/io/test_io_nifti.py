"""NIfTI on nibabel's bundled test files and on volumes built with a known voxel in a known place."""

import gzip

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from fovea.core.io import Limits, Volume, read_input, read_nifti, write_nifti
from fovea.errors import InputError, LimitExceeded

DATA = str(data_path)


def known_xyz(dtype=np.float32):
    """A (x, y, z) = (4, 5, 6) volume that is 0 except voxel (x=1, y=2, z=3) = 42 and (3, 0, 5) = 7."""
    xyz = np.zeros((4, 5, 6), dtype)
    xyz[1, 2, 3], xyz[3, 0, 5] = 42, 7
    return xyz


def save(image, path):
    nib.save(image, path)
    return path


@pytest.mark.parametrize("file_name", ["known.nii.gz", "known.nii"])
def test_orientation_spacing_and_names(tmp_path, file_name):
    path = save(nib.Nifti1Image(known_xyz(), np.diag([0.5, 0.75, 3.0, 1])), tmp_path / file_name)
    volume = read_input(path)
    assert isinstance(volume, Volume) and volume.name == file_name
    assert volume.size == (6, 5, 4)  # (z, y, x)
    assert volume.voxels[3, 2, 1] == 42 and volume.voxels[5, 0, 3] == 7 and volume.voxels.sum() == 49
    assert volume.voxels.dtype == np.float32 and volume.voxels.flags.c_contiguous
    assert volume.spacing == pytest.approx((3.0, 0.75, 0.5))
    assert volume.slice_names[3] == f"{file_name}#3"
    assert read_input(path.read_bytes()).voxels[3, 2, 1] == 42  # from bytes, sniffed by content


def test_scale_slope_and_intercept_are_applied(tmp_path):
    image = nib.Nifti1Image(known_xyz(np.int16), np.eye(4))
    image.header.set_slope_inter(2.0, 10.0)
    volume = read_nifti(save(image, tmp_path / "scaled.nii.gz"))
    assert volume.voxels[3, 2, 1] == 42 * 2 + 10 and volume.voxels[0, 0, 0] == 10


def test_bundled_files_match_nibabel(tmp_path):
    for file_name, spacing in [("standard.nii.gz", (2.0, 3.0, 1.0)), ("anatomical.nii", (2.0, 2.0, 2.0))]:
        volume = read_nifti(f"{DATA}/{file_name}")
        expected = nib.load(f"{DATA}/{file_name}").get_fdata().transpose(2, 1, 0)
        np.testing.assert_array_equal(volume.voxels, expected)  # anatomical.nii is big-endian int16
        assert volume.spacing == pytest.approx(spacing)


def test_nifti2_and_a_singleton_fourth_dimension(tmp_path):
    two = read_nifti(save(nib.Nifti2Image(known_xyz(), np.eye(4)), tmp_path / "two.nii"))
    assert two.size == (6, 5, 4) and two.voxels[3, 2, 1] == 42
    four = read_nifti(save(nib.Nifti1Image(known_xyz()[..., None], np.eye(4)), tmp_path / "four.nii.gz"))
    assert four.size == (6, 5, 4) and four.voxels[5, 0, 3] == 7
    with pytest.raises(InputError, match=r"^example4d.nii.gz: expected a 3-D NIfTI volume, got shape"):
        read_nifti(f"{DATA}/example4d.nii.gz")  # 2 time points
    with pytest.raises(InputError, match="expected a 3-D NIfTI volume"):
        read_input(f"{DATA}/example_nifti2.nii.gz")


def test_write_then_read_round_trips_and_other_tools_agree(tmp_path):
    volume = read_nifti(f"{DATA}/anatomical.nii")
    written = write_nifti(volume, tmp_path / "copy.nii.gz")
    assert written[:2] == b"\x1f\x8b" and (tmp_path / "copy.nii.gz").read_bytes() == written
    again = read_nifti(written, name="copy")
    np.testing.assert_array_equal(again.voxels, volume.voxels)
    assert again.spacing == pytest.approx(volume.spacing)

    mask = np.zeros((6, 5, 4), np.int64)  # (z, y, x), as np.argmax gives it
    mask[3, 2, 1] = 2
    plain = write_nifti(mask, tmp_path / "mask.nii", spacing=(3.0, 0.75, 0.5))
    assert plain[344:348] == b"n+1\x00"  # .nii: not gzipped
    on_disk = nib.load(tmp_path / "mask.nii")
    assert on_disk.get_data_dtype() == np.int32 and on_disk.shape == (4, 5, 6)
    assert on_disk.get_fdata()[1, 2, 3] == 2  # nibabel sees (x, y, z)
    assert on_disk.header.get_zooms() == pytest.approx((0.5, 0.75, 3.0))
    back = read_nifti(tmp_path / "mask.nii")
    np.testing.assert_array_equal(back.voxels, mask)
    assert back.spacing == pytest.approx((3.0, 0.75, 0.5))
    assert nib.Nifti1Image.from_bytes(gzip.decompress(write_nifti(mask > 0))).get_data_dtype() == np.uint8
    assert write_nifti(mask) == write_nifti(mask)  # reproducible bytes (no gzip timestamp)
    with pytest.raises(ValueError, match="depth, height, width"):
        write_nifti(np.zeros((4, 4)))


def test_broken_and_oversized_nifti(tmp_path):
    with open(f"{DATA}/anatomical.nii", "rb") as handle:
        data = handle.read()
    with pytest.raises(InputError, match=r"^cut.nii: truncated NIfTI file"):
        read_input(data[:4000], name="cut.nii")
    with pytest.raises(InputError, match=r"^cut.nii.gz: truncated NIfTI file"):
        read_input(gzip.compress(data)[:3000], name="cut.nii.gz")
    with pytest.raises(InputError, match=r"^bad.nii.gz: not a NIfTI file"):
        read_input(gzip.compress(b"\0" * 1000), name="bad.nii.gz")
    pair = bytearray(data)
    pair[344:348] = b"ni1\x00"
    with pytest.raises(InputError, match="pair is not supported"):
        read_nifti(bytes(pair), name="a.hdr")
    # A gzip bomb: 8 MB of zeros in a few kB; refused from the header, before inflating.
    bomb = gzip.compress(nib.Nifti1Image(np.zeros((200, 200, 200), np.uint8), np.eye(4)).to_bytes())
    assert len(bomb) < 50_000
    with pytest.raises(LimitExceeded, match=r"^bomb.nii.gz: volume of \(200, 200, 200\) voxels is over the limit"):
        read_input(bomb, name="bomb.nii.gz", limits=Limits(max_voxels=1_000_000))
