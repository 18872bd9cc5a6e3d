"""Custom models through every dialect: a `BaseInferenceModel` that names its AiCOCO output strategy is served by
`fovea serve-model package.module:Class` through V2 (the real `tritonclient`) and Supervisely (raw HTTP and the
real SDK) as well as FLaVor's `/invocations`, from one real server process.

`SpotDetector` is the user's model: its own reader (OpenCV on the uploaded file's path), a box around the pixels at
or above `threshold` (a hook default, so an inference setting), FLaVor's `self.formatter` idiom. `SpotSegmenter`
says its task with the `task` attribute instead and builds its strategy inside `output_formatter`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import cv2
import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient

from fovea import (
    AiCOCODetectionOutputStrategy,
    AiCOCOSegmentationOutputStrategy,
    BaseInferenceModel,
    InputError,
)
from tests.media import write_video
from tests.server.test_supervisely_sdk import run_flow
from tests.servers import running

# -- the user's models ------------------------------------------------------------------------------


class SpotDetector(BaseInferenceModel):
    def __init__(self):
        super().__init__()
        self.formatter = AiCOCODetectionOutputStrategy()

    def define_inference_network(self):
        return lambda gray: gray

    def set_categories(self):
        return [{"name": "spot", "supercategory_name": None}]

    def set_regressions(self):
        return None

    def data_reader(self, files=None, **kwargs):
        gray = cv2.imread(files[0], cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise InputError("not an image OpenCV reads")
        return gray, None

    def postprocess(self, out, threshold=128):
        ys, xs = np.nonzero(out >= threshold)
        if len(xs) == 0:
            return {"bbox_pred": [], "cls_pred": [], "confidence_score": []}
        return {
            "bbox_pred": [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]],
            "cls_pred": [[1]],
            "confidence_score": [0.8],
        }

    def output_formatter(self, model_out, images, categories=None, **kwargs):
        return self.formatter(model_out=model_out, images=images, categories=categories)


class SpotSegmenter(SpotDetector):
    task = "segmentation"

    def __init__(self):
        BaseInferenceModel.__init__(self)

    def set_categories(self):
        return [{"name": "background", "supercategory_name": None, "display": False}, {"name": "spot"}]

    def postprocess(self, out, threshold=128):
        spot = (out >= threshold).astype(np.int32)
        return np.stack([1 - spot, spot])

    def output_formatter(self, model_out, images, categories=None, **kwargs):
        return AiCOCOSegmentationOutputStrategy()(model_out=model_out, images=images, categories=categories)


# -- inputs and servers -----------------------------------------------------------------------------

SPOT = (40, 30, 90, 60)  # x1, y1, x2, y2 of a gray-200 rectangle on a 120x160 black image


def spot_png(level: int = 200) -> bytes:
    image = np.zeros((120, 160, 3), np.uint8)
    x1, y1, x2, y2 = SPOT
    image[y1:y2, x1:x2] = level
    return cv2.imencode(".png", image)[1].tobytes()


def serve_custom(name: str, *args: str) -> Iterator[str]:
    spec = f"{__name__}:{name}"
    with running(
        lambda port: [sys.executable, "-m", "fovea.cli", "serve-model", spec, "--port", str(port), *args], "/ping", 204
    ) as url:
        yield url


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Iterator[str]:
    """The spot detector, with media ids: image 0 the bright spot, image 1 a dark one; video 0 six frames."""
    media = tmp_path_factory.mktemp("media")
    (media / "a_bright.png").write_bytes(spot_png())
    (media / "b_dark.png").write_bytes(spot_png(100))
    write_video(media / "clip.mkv", 6)
    yield from serve_custom("SpotDetector", "--media", str(media))


@pytest.fixture(scope="module")
def segmenter() -> Iterator[str]:
    yield from serve_custom("SpotSegmenter")


def sly(url: str, endpoint: str, **state) -> httpx.Response:
    return httpx.post(f"{url}/{endpoint}", json={"state": state}, timeout=60)


# -- V2 ----------------------------------------------------------------------------------------------


def test_v2_metadata_describes_encoded_images_in_and_the_tasks_outputs(detector):
    client = httpclient.InferenceServerClient(detector.removeprefix("http://"))
    assert client.is_model_ready("SpotDetector")
    metadata = client.get_model_metadata("SpotDetector")
    assert metadata["platform"] == "custom"
    assert metadata["inputs"] == [{"name": "image_bytes", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in metadata["outputs"]] == ["boxes", "scores", "labels", "num_detections", "image_sizes"]
    config = client.get_model_config("SpotDetector")
    assert config["backend"] == "custom" and config["instance_group"][0]["count"] == 1


def test_tritonclient_gets_the_box_in_original_pixels(detector):
    client = httpclient.InferenceServerClient(detector.removeprefix("http://"))
    images = httpclient.InferInput("image_bytes", [2], "BYTES")
    images.set_data_from_numpy(np.array([spot_png(), spot_png(100)], dtype=np.object_))
    outputs = [httpclient.InferRequestedOutput(name) for name in ("boxes", "num_detections", "image_sizes", "labels")]
    result = client.infer("SpotDetector", [images], outputs=outputs, parameters={"threshold": 150})
    assert result.as_numpy("num_detections").tolist() == [1, 0]  # the darker spot is under the request's threshold
    np.testing.assert_allclose(result.as_numpy("boxes")[0, 0], SPOT)
    assert result.as_numpy("image_sizes").tolist() == [[120, 160], [120, 160]]
    assert result.as_numpy("labels")[0].tolist() == [0]


def test_v2_refuses_a_tensor_and_a_broken_image_with_400(detector):
    tensor = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [0, 0, 0]}]}
    response = httpx.post(f"{detector}/v2/models/SpotDetector/infer", json=tensor)
    assert response.status_code == 400 and "image_bytes" in response.json()["error"]
    raw = httpx.post(
        f"{detector}/v2/models/SpotDetector/infer",
        content=b"not an image",
        headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "0"},
    )
    assert raw.status_code == 400 and "body" in raw.json()["error"]


# -- Supervisely -------------------------------------------------------------------------------------


def test_supervisely_session_info_meta_and_settings_come_from_the_model(detector):
    info = sly(detector, "get_session_info").json()
    assert info["task type"] == "object detection" and info["runtime"] == "custom" and info["device"] is None
    meta = sly(detector, "get_output_classes_and_tags").json()
    assert [(c["title"], c["shape"]) for c in meta["classes"]] == [("spot", "rectangle")]
    assert sly(detector, "get_custom_inference_settings").json() == {"settings": {"threshold": 128}}
    wrong = httpx.post(
        f"{detector}/inference_image",
        files={"files": ("scene.png", spot_png())},
        data={"state": json.dumps({"settings": {"threshold": "high"}})},
    )
    assert wrong.status_code == 400 and "threshold" in wrong.json()["message"]


def test_supervisely_image_upload_gets_a_rectangle_on_the_spot(detector):
    files = {"files": ("scene.png", spot_png())}
    answer = httpx.post(f"{detector}/inference_image", files=files, timeout=60).json()
    annotation = answer["annotation"]
    assert annotation["size"] == {"height": 120, "width": 160}
    [label] = annotation["objects"]
    (x1, y1), (x2, y2) = label["points"]["exterior"]
    assert (label["classTitle"], x1, y1, x2, y2) == ("spot", 40, 30, 89, 59)  # Supervisely's corners are inclusive


def test_supervisely_async_batch_runs_the_model_on_every_image(detector):
    files = [("files", ("a.png", spot_png())), ("files", ("b.png", spot_png(100)))]
    started = httpx.post(f"{detector}/inference_batch_async", files=files, timeout=60).json()
    request_uuid = started["inference_request_uuid"]
    deadline = time.monotonic() + 60
    while not sly(detector, "get_inference_progress", inference_request_uuid=request_uuid).json()["finished"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    results = sly(detector, "pop_inference_results", inference_request_uuid=request_uuid).json()["pending_results"]
    assert [(r["name"], len(r["annotation"]["objects"])) for r in results] == [("a.png", 1), ("b.png", 0)]


def test_media_ids_answer_through_the_custom_model(detector):
    bright = sly(detector, "inference_image_id", image_id=0).json()
    [label] = bright["annotation"]["objects"]
    assert label["points"]["exterior"] == [[40, 30], [89, 59]]
    assert sly(detector, "inference_image_id", image_id=1).json()["annotation"]["objects"] == []
    unknown = sly(detector, "inference_image_id", image_id=2)
    assert unknown.status_code == 404 and "image 2" in unknown.json()["message"]
    for hostile, status in ((10**30, 404), (-1, 404), ("0", 400), (True, 400), (1.5, 400)):
        assert sly(detector, "inference_image_id", image_id=hostile).status_code == status, hostile
    assert sly(detector, "inference_video_id", videoId=10**30).status_code == 404
    deep = b'{"state": {"image_id": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    nested = httpx.post(f"{detector}/inference_image_id", content=deep, headers={"Content-Type": "application/json"})
    assert nested.status_code == 400 and "nested too deeply" in nested.json()["message"]
    frames = sly(detector, "inference_video_id", videoId=0, startFrameIndex=1, framesCount=3).json()["ann"]
    assert [(f["frame_index"], f["annotation"]["size"]) for f in frames] == [
        (k, {"height": 48, "width": 64}) for k in (1, 2, 3)
    ]


def test_the_supervisely_sdk_sees_the_custom_detector(supervisely_python, detector, tmp_path):
    image = tmp_path / "scene.png"
    image.write_bytes(spot_png(200))
    out = run_flow(supervisely_python, detector, "custom_detection", image)
    assert out["classes"] == ["spot"] and out["defaults"] == {"threshold": 128}
    assert out["box"] == [40, 30, 89, 59] and out["strict"] == []  # threshold 250 finds nothing


def test_a_custom_segmenter_answers_a_bitmap_and_a_v2_mask(segmenter):
    answer = httpx.post(f"{segmenter}/inference_image", files={"files": ("s.png", spot_png())}, timeout=60).json()
    [label] = answer["annotation"]["objects"]
    assert label["classTitle"] == "spot" and label["bitmap"]["origin"] == [40, 30]
    # The image as a binary BYTES element: a 4-byte length, then the bytes (open-inference-protocol.md §8).
    png = spot_png()
    element = {
        "name": "image_bytes",
        "datatype": "BYTES",
        "shape": [1],
        "parameters": {"binary_data_size": len(png) + 4},
    }
    body = json.dumps({"inputs": [element]}).encode()
    response = httpx.post(
        f"{segmenter}/v2/models/SpotSegmenter/infer",
        content=body + len(png).to_bytes(4, "little") + png,
        headers={"Inference-Header-Content-Length": str(len(body))},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    [masks] = response.json()["outputs"][:1]
    assert masks["name"] == "masks" and masks["shape"] == [1, 120, 160]
    pixels = np.array(masks["data"], np.uint8).reshape(120, 160)
    x1, y1, x2, y2 = SPOT
    assert (pixels[y1:y2, x1:x2] == 1).all() and pixels.sum() == (x2 - x1) * (y2 - y1)


def test_flavor_invocations_still_answer_the_models_own_aicoco(detector):
    images = [{"id": "i0", "index": 0, "file_name": "scene.png", "category_ids": None, "regressions": None}]
    response = httpx.post(
        f"{detector}/invocations",
        data={"images": json.dumps(images)},
        files=[("files", ("scene.png", spot_png()))],
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert [a["bbox"] for a in response.json()["annotations"]] == [[list(SPOT)]]


def test_the_limits_hold_before_the_models_reader_sees_an_upload():
    from fastapi.testclient import TestClient

    from fovea.core.io import Limits
    from fovea.server.infer_app import InferAPP

    class Counting(SpotDetector):
        reads = 0

        def data_reader(self, files=None, **kwargs):
            Counting.reads += 1
            return super().data_reader(files)

    app = InferAPP(Counting(), limits=Limits(max_decoded_bytes=10_000))  # a 160x120 RGB image decodes to 57,600
    with TestClient(app.app) as client:
        answer = client.post("/inference_image", files={"files": ("big.png", spot_png())})
        v2 = client.post(
            "/v2/models/Counting/infer",
            content=spot_png(),
            headers={"Content-Type": "image/png", "Inference-Header-Content-Length": "0"},
        )
    assert answer.status_code == 413 and "big.png" in answer.json()["message"]
    assert v2.status_code == 413 and Counting.reads == 0
