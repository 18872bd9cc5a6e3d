"""Input caps that an operator sets on `fovea serve-model`, and that id-based media reads respect.

`--max-decoded-mb` caps the decoded size of one image (w x h x samples x item size) before it is decoded; the
files that id-based calls read from a `--media` folder are read under the session's byte limit, never whole (a
file may be huge, or a device). tests/platform/test_session_media_limits.py does the same for platform sessions.
"""

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from fovea.core.io import Limits
from fovea.errors import LimitExceeded
from fovea.sessions.media import MediaFolder
from tests.servers import serve


def png(width, height):
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 200, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def invoke(url, name, data):
    images = [{"id": "i", "index": 0, "file_name": name, "category_ids": None, "regressions": None}]
    return httpx.post(
        f"{url}/invocations", data={"images": json.dumps(images)}, files=[("files", (name, data))], timeout=60
    )


def test_max_decoded_mb_refuses_a_larger_image_with_413(zoo_dir):
    small, large = png(64, 64), png(256, 256)  # 12 KiB and 192 KiB decoded (RGB), both a few hundred bytes stored
    assert len(large) < 4096
    with serve(zoo_dir / "digits-lenet.onnx", "--max-decoded-mb", "0.1") as url:
        assert invoke(url, "small.png", small).status_code == 200
        refused = invoke(url, "large.png", large)
        headers = {"Content-Type": "image/png", "Inference-Header-Content-Length": "0"}
        by_v2 = httpx.post(f"{url}/v2/models/digits-lenet/infer", content=large, headers=headers, timeout=60)
    assert refused.status_code == 413, refused.text
    assert "bytes" in refused.text and "Traceback" not in refused.text
    assert by_v2.status_code == 413 and by_v2.json()["error"].startswith("body: "), by_v2.text  # which upload


def sparse_file(path, size):
    """A file of `size` bytes that takes no disk space: reading it whole would still cost `size` bytes of memory."""
    with path.open("wb") as file:
        file.truncate(size)
    return path


def test_a_media_folder_reads_files_under_the_sessions_byte_limit(tmp_path):
    sparse_file(tmp_path / "huge.mp4", 64 * 1024**2 + 1)
    (tmp_path / "small.png").write_bytes(png(8, 8))
    with pytest.raises(LimitExceeded, match="over the limit"):
        MediaFolder(tmp_path).video(0)  # the default limit: 64 MiB
    with pytest.raises(LimitExceeded, match="over the limit"):
        MediaFolder(tmp_path, Limits(max_bytes=16)).image(0)
    assert MediaFolder(tmp_path).image(0)[1] == "small.png"
