"""Budgets before work: small inputs that would expand (HTTP Content-Encoding, deflated DICOM, deep TIFF
samples) are refused before they do."""

import gzip
import http.server
import io
import threading
import tracemalloc
import zlib
from typing import ClassVar

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from fovea.core.io import Limits, decode_frames, decode_image, fetch_url, read_dicom, read_input
from fovea.errors import InputError, LimitExceeded

MB = 1_000_000


def gzip_of_zeros(size: int) -> bytes:
    """A gzip stream of `size` zero bytes, built without holding them all."""
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + 15)
    block = bytes(MB)
    parts = [stream.compress(block) for _ in range(size // MB)]
    return b"".join(parts) + stream.flush()


BOMB = gzip_of_zeros(200 * MB)  # ~200 KB on the wire
SMALL_TEXT = b"hello, inflated world " * 100


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers with Content-Encoding whatever the client asked for, as a hostile server would."""

    accept_encodings: ClassVar[list[str]] = []

    def do_GET(self):
        Handler.accept_encodings.append(self.headers.get("Accept-Encoding", ""))
        encoding, body = {
            "/bomb.gz": ("gzip", BOMB),
            "/small.gz": ("gzip", gzip.compress(SMALL_TEXT)),
            "/small.deflate": ("deflate", zlib.compress(SMALL_TEXT)),
            "/small.br": ("br", b"\x0b\x02\x80hello\x03"),
            "/truncated.gz": ("gzip", gzip.compress(SMALL_TEXT)[:-12]),
        }[self.path]
        self.send_response(200)
        self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


LOOPBACK = Limits(allow_private_hosts=("127.0.0.1",), max_bytes=MB)


def test_url_gzip_bomb_is_refused_without_inflating_it(server):
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded, match="limit of 1000000"):
            fetch_url(f"{server}/bomb.gz", limits=LOOPBACK)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MB, f"inflating the body peaked at {peak} bytes"


def test_url_asks_for_identity_and_still_inflates_small_bodies(server):
    Handler.accept_encodings.clear()
    assert fetch_url(f"{server}/small.gz", limits=LOOPBACK)[0] == SMALL_TEXT
    assert fetch_url(f"{server}/small.deflate", limits=LOOPBACK)[0] == SMALL_TEXT
    assert Handler.accept_encodings == ["identity", "identity"]


def test_url_with_unsupported_or_truncated_encoding_is_refused(server):
    with pytest.raises(InputError, match="Content-Encoding 'br'"):
        fetch_url(f"{server}/small.br", limits=LOOPBACK)
    with pytest.raises(InputError, match="truncated"):
        fetch_url(f"{server}/truncated.gz", limits=LOOPBACK)


def deflated_dicom(padding: int) -> bytes:
    """An 8x8 Deflated Explicit VR Little Endian file with a private element of `padding` zero bytes."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.arange(64, dtype=np.uint8).tobytes()
    ds.add_new((0x0009, 0x0010), "LO", "FOVEA")
    ds.add_new((0x0009, 0x1001), "OB", bytes(padding))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_deflated_dicom_within_budget_reads():
    data = deflated_dicom(1000)
    image = read_input(data, name="small.dcm")
    assert image.pixels.shape == (8, 8, 3)
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian


def test_deflated_dicom_inflating_past_budget_is_refused_before_inflating():
    data = deflated_dicom(50 * MB)
    assert len(data) < MB // 4
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded, match=r"deflated DICOM.*limit of 1000000"):
            read_dicom(data, name="bomb.dcm", limits=Limits(max_decoded_bytes=MB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MB, f"reading the file peaked at {peak} bytes"


def tiff(array: np.ndarray, **kwargs) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


# 100x100 pixels pass; 4 samples of 16 bits decode to 80,000 bytes, RGBA of 8 bits to 40,000.
DEEP_BUDGET = Limits(max_pixels=10_000, max_decoded_bytes=40_000)


def test_tiff_budget_counts_samples_and_bit_depth():
    deep = tiff(np.zeros((100, 100, 4), np.uint16), photometric="rgb", extrasamples=["unassalpha"])
    with pytest.raises(LimitExceeded, match="100x100 pixels of 4 x 2-byte samples"):
        decode_image(deep, name="deep.tif", limits=DEEP_BUDGET)
    with pytest.raises(LimitExceeded):
        decode_frames(deep, name="deep.tif", limits=DEEP_BUDGET)
    shallow = tiff(np.zeros((100, 100, 4), np.uint8), photometric="rgb", extrasamples=["unassalpha"])
    assert decode_image(shallow, name="rgba.tif", limits=DEEP_BUDGET).pixels.shape == (100, 100, 3)


def test_tiff_that_only_tifffile_reads_is_budgeted_too():
    floats = tiff(np.zeros((100, 100, 3), np.float64), photometric="rgb")  # Pillow cannot open float64 RGB
    with pytest.raises(LimitExceeded, match="3 x 8-byte samples"):
        decode_image(floats, name="float.tif", limits=DEEP_BUDGET)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP"])
def test_other_formats_are_budgeted_as_rgb(fmt):
    buffer = io.BytesIO()
    PILImage.new("RGB", (100, 100)).save(buffer, fmt)
    with pytest.raises(LimitExceeded, match="decode to 30000 bytes"):
        decode_image(buffer.getvalue(), name=f"x.{fmt.lower()}", limits=Limits(max_decoded_bytes=29_999))
    assert decode_image(buffer.getvalue(), limits=Limits(max_decoded_bytes=30_000)).original_size == (100, 100)
