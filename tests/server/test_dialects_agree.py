"""The same image through the three dialects gives the same answer; limits give their status codes."""

import io
import json

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from PIL import Image

from tests.servers import serve


def scene_png():
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_detection_agrees_across_dialects(detector_url):
    data = scene_png()
    sly = httpx.post(f"{detector_url}/inference_image", files=[("files", ("s.png", data))]).json()["annotation"]
    sly_boxes = {o["classTitle"]: o["points"]["exterior"] for o in sly["objects"]}
    images = [{"id": "0", "index": 0, "file_name": "s.png", "category_ids": None, "regressions": None}]
    aicoco = httpx.post(
        f"{detector_url}/invocations", data={"images": json.dumps(images)}, files=[("files", ("s.png", data))]
    ).json()
    names = {c["id"]: c["name"] for c in aicoco["categories"]}
    objects = {o["id"]: names[o["category_ids"][0]] for o in aicoco["objects"]}
    flavor_boxes = {objects[a["object_id"]]: a["bbox"][0] for a in aicoco["annotations"]}
    client = httpclient.InferenceServerClient(detector_url.removeprefix("http://"))
    tensor = httpclient.InferInput("image_bytes", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([data], dtype=object))
    outputs = [httpclient.InferRequestedOutput(n) for n in ("boxes", "labels", "num_detections")]
    result = client.infer("pets-detector", [tensor], outputs=outputs)
    count = int(result.as_numpy("num_detections")[0])
    classes = ["cat", "dog", "bird"]
    v2_boxes = {
        classes[label]: box
        for label, box in zip(result.as_numpy("labels")[0][:count], result.as_numpy("boxes")[0][:count], strict=True)
    }
    assert set(sly_boxes) == set(flavor_boxes) == set(v2_boxes) == {"dog", "cat"}
    for name in v2_boxes:
        (left, top), (right, bottom) = sly_boxes[name]
        np.testing.assert_allclose(flavor_boxes[name], v2_boxes[name], atol=1)
        np.testing.assert_allclose([left, top, right + 1, bottom + 1], v2_boxes[name], atol=1)


@pytest.fixture(scope="module")
def small_limits_url(detector_path):
    with serve(detector_path, "--max-request-mb", "0.05", "--max-files", "2") as url:
        yield url


def test_limits_answer_413_in_each_dialect(small_limits_url):
    big = b"\0" * 80_000
    sly = httpx.post(f"{small_limits_url}/inference_image", files=[("files", ("big.png", big))])
    assert sly.status_code == 413 and sly.json()["success"] is False
    images = [
        {"id": str(i), "index": i, "file_name": f"{i}.png", "category_ids": None, "regressions": None} for i in range(3)
    ]
    many = httpx.post(
        f"{small_limits_url}/invocations",
        data={"images": json.dumps(images)},
        files=[("files", (f"{i}.png", scene_png()[:10])) for i in range(3)],
    )
    assert many.status_code == 413 and "error" in many.json()
    v2 = httpx.post(f"{small_limits_url}/v2/models/pets-detector/infer", content=big)
    assert v2.status_code == 413 and "error" in v2.json()


def test_health_ready_and_metrics(detector_url):
    assert httpx.get(f"{detector_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{detector_url}/readyz").status_code == 200
    httpx.post(f"{detector_url}/inference_image", files=[("files", ("s.png", scene_png()))])
    metrics = httpx.get(f"{detector_url}/metrics").text
    assert 'fovea_requests_total{method="POST",route="/inference_image",status="200"}' in metrics
    assert "fovea_batch_size_bucket" in metrics and "fovea_request_seconds_bucket" in metrics
