"""`inferenceSingle` decodes its image within the limits before writing anything: a decompression bomb or a
truncated file is a 4xx with no process, no dataset and no folder left behind."""

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.platform.test_processes import digits_setup  # noqa: F401 (a fixture)


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A PNG whose header declares width x height 8-bit gray pixels, with one small all-zero IDAT."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(bytes(1 + width) * 8)  # a few rows; the decoder would want all of them
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8)
    PILImage.fromarray(noise).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("image", "status", "message"),
    [
        (data_url(png_bomb(), "image/png"), 413, "limit of"),
        (data_url(truncated_jpeg(), "image/jpeg"), 400, "truncated"),
    ],
    ids=["png-bomb", "truncated-jpeg"],
)
def test_bad_image_is_refused_before_anything_is_written(backend, digits_setup, image, status, message):  # noqa: F811
    headers, ids = digits_setup
    datasets = backend.settings.storage_dir / "datasets"
    folders_before = sorted(datasets.iterdir())
    body = {"modelweights_id": ids["modelweights_id"], "project_id": ids["project_id"], "image_data": image}
    response = backend.post("/backend/inferenceSingle", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    listed = backend.get(f"/backend/inferenceSingle?project_id={ids['project_id']}", headers=headers)
    assert listed.status_code == 200 and listed.json() == []
    assert sorted(datasets.iterdir()) == folders_before
