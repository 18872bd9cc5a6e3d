"""read_input, sniffing and Limits: every kind of source to the right reader, every bad one to a clear error."""

import gzip
import io

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.data import get_testdata_file
from skimage import data

from fovea.core.io import Image, Limits, Volume, read_input, sniff
from fovea.errors import InputError, LimitExceeded

CHELSEA = data.chelsea()
CT = get_testdata_file("CT_small.dcm", download=False)


def encode(pixels, fmt):
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def nifti_bytes(array):
    return nib.Nifti1Image(array, np.eye(4)).to_bytes()


def dicom_without_preamble():
    ds = pydicom.dcmread(CT)
    del ds.file_meta
    ds.preamble = None  # no 128-byte preamble, no "DICM", no file meta: what some old tools write
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=False, implicit_vr=False, little_endian=True)
    return buffer.getvalue()


def test_sniff_reads_the_content_not_the_name():
    assert sniff(encode(CHELSEA, "PNG"), "cat.jpg") == "png"
    assert sniff(encode(CHELSEA, "JPEG"), "cat.png") == "jpeg"
    assert sniff(encode(CHELSEA, "BMP")) == "bmp"
    assert sniff(encode(CHELSEA, "GIF")) == "gif"
    assert sniff(encode(CHELSEA, "TIFF")) == "tiff"
    assert sniff(encode(CHELSEA, "WEBP")) == "webp"
    with open(CT, "rb") as handle:
        assert sniff(handle.read(), "scan.png") == "dicom"
    volume = nifti_bytes(np.zeros((2, 3, 4), np.float32))
    assert sniff(volume) == "nifti"
    assert sniff(gzip.compress(volume)) == "nifti"  # by content, whatever the name
    assert sniff(gzip.compress(b"not a volume" * 100)) == "unknown"
    assert sniff(b"hello world" * 100, "notes.txt") == "unknown"
    assert sniff(encode(CHELSEA, "JPEG")[:1024]) == "jpeg"  # a file's first kilobyte is enough


def test_the_name_settles_what_the_bytes_cannot():
    headless = dicom_without_preamble()
    assert headless[128:132] != b"DICM"
    assert sniff(headless) == "unknown" and sniff(headless, "ct.dcm") == "dicom"
    assert sniff(gzip.compress(b"\0" * 600), "mask.nii.gz") == "nifti"


def test_read_input_dispatches_every_kind_of_source(tmp_path):
    path = tmp_path / "chelsea.png"
    path.write_bytes(encode(CHELSEA, "PNG"))
    for source in (path, str(path)):
        image = read_input(source)
        assert isinstance(image, Image) and image.name == "chelsea.png"
        np.testing.assert_array_equal(image.pixels, CHELSEA)
    assert read_input(path, name="other").name == "other"
    from_bytes = read_input(bytearray(path.read_bytes()), name="up.png")
    assert from_bytes.name == "up.png" and from_bytes.pixels.shape == (300, 451, 3)
    assert read_input(CHELSEA, name="array").pixels is CHELSEA
    headless = tmp_path / "ct.dcm"
    headless.write_bytes(dicom_without_preamble())
    ct = read_input(headless)
    assert isinstance(ct, Image) and ct.pixels.shape == (128, 128, 3) and ct.name == "ct.dcm"
    (tmp_path / "v.nii").write_bytes(nifti_bytes(np.zeros((2, 3, 4), np.float32)))
    assert isinstance(read_input(tmp_path / "v.nii"), Volume)


def test_min_size_reaches_the_jpeg_decoder(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(encode(np.asarray(PILImage.fromarray(CHELSEA).resize((1804, 1200))), "JPEG"))
    image = read_input(path, min_size=(150, 150))
    assert image.pixels.shape == (150, 226, 3) and image.original_size == (1200, 1804)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match=r"^missing.png: file not found$"):
        read_input(tmp_path / "missing.png")
    with pytest.raises(InputError, match="is a directory"):
        read_input(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"^empty.png is empty$"):
        read_input(tmp_path / "empty.png")
    (tmp_path / "notes.txt").write_text("a text file, not an image\n" * 10)
    with pytest.raises(InputError, match=r"^notes.txt: unrecognised image format"):
        read_input(tmp_path / "notes.txt")
    (tmp_path / "big.png").write_bytes(encode(CHELSEA, "PNG"))
    with pytest.raises(LimitExceeded, match=r"^big.png is \d+ bytes, over the limit of 5000$"):
        read_input(tmp_path / "big.png", limits=Limits(max_bytes=5000))
    with pytest.raises(LimitExceeded, match="over the limit of 5000"):
        read_input(encode(CHELSEA, "PNG"), limits=Limits(max_bytes=5000))
    with pytest.raises(InputError, match=r"^input is empty$"):
        read_input(b"")
    with pytest.raises(TypeError, match="not int"):
        read_input(42)


def test_limits_are_validated():
    assert Limits(allow_private_hosts=["10.0.0.0/8"]).allow_private_hosts == ("10.0.0.0/8",)
    with pytest.raises(ValueError, match="max_pixels must be positive"):
        Limits(max_pixels=0)
    with pytest.raises(TypeError, match="not a string"):
        Limits(allow_private_hosts="127.0.0.1")
    with pytest.raises(AttributeError):
        Limits().max_bytes = 1  # frozen
