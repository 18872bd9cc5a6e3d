"""The unmodified `supervisely` SDK (its own virtualenv) against a real `fovea serve-model` process."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.core.io.test_io_urls import Handler  # a loopback server handler that serves /cat.png
from tests.server.conftest import DETECTOR_BOXES

FLOWS = Path(__file__).with_name("sly_flows.py")


def run_flow(python, url, flow, *args):
    result = subprocess.run(
        [str(python), str(FLOWS), url, flow, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def image_server():
    import http.server
    import threading

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_classification_flows(supervisely_python, imagenet_url, zoo_dir, tmp_path, image_server):
    settings = tmp_path / "settings.yml"
    settings.write_text("top_k: 3\n")
    samples = zoo_dir / "samples"
    out = run_flow(
        supervisely_python,
        imagenet_url,
        "classification",
        samples / "chelsea.jpg",
        samples / "coffee.jpg",
        settings,
        f"{image_server}/cat.png",
    )
    assert out["info"]["task type"] == "classification" and out["info"]["number_of_classes"] == 1000
    assert out["defaults"] == {"top_k": 5} and out["settings"] == {"top_k": 2}
    assert out["tag_names"][0] == "confidence"
    cat = out["path"][0]
    assert "cat" in cat
    assert out["paths"][0] == out["paths"][2] == [cat] and out["paths"][1] == ["espresso"]
    assert out["id"] == [cat] and out["ids"] == [["espresso"], [cat]]
    assert len(out["url"]) == 1
    assert out["yaml_settings"] == {"top_k": 3}
    assert "Key 'bogus' is not acceptable" in out["bogus"]
    assert "404" in out["missing_id"]


def test_video_flows_with_progress_and_stop(supervisely_python, imagenet_url):
    out = run_flow(supervisely_python, imagenet_url, "video")
    assert out == {"sync": 3, "async_total": 6, "async": 6, "stopped": 3}


def test_detection_settings_and_boxes(supervisely_python, detector_url, tmp_path):
    image = tmp_path / "scene.png"
    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(image)
    out = run_flow(supervisely_python, detector_url, "detection", image)
    assert out["confident"] == ["dog"] and out["cats"] == ["cat"]
    x1, y1, x2, y2 = DETECTOR_BOXES[0]
    assert out["box"] == pytest.approx([x1, y1, x2 - 1, y2 - 1], abs=1)
    assert out["confidence"] == [pytest.approx(0.9)]
    assert out["classes"] == ["cat", "dog", "bird"]
