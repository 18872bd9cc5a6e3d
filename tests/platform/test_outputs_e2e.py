"""Inference processes on a real `fovea serve`, read back over HTTP: segmentation masks from `media/`, multi-label and
regression output rows, and the `format=coco|supervisely` documents (reference/backend-api.md §9).

The models are tiny ONNX graphs with known outputs (tests/core/graphs.py), registered through the API.
"""

from __future__ import annotations

import io
import json
import time
import zipfile

import httpx
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from fovea.core.card import ModelCard
from fovea.core.formats import decode_bitmap, rle_decode
from fovea.datasets import write_dataset_yaml
from tests.core.graphs import bright_pixels_segmenter, constant_outputs
from tests.platform.server import fovea_serve, fresh_home

ADMIN_PASSWORD = "outputs-e2e-secret-7"
SEGMENTATION, MULTILABEL, REGRESSION = 2, 4, 5
SIZES = [(30, 40), (50, 50), (48, 64)]  # (height, width): masks come back at each image's own size


def bright_band(height, width):
    """A black RGB image with a bright red band over its middle half, and the band as a bool mask."""
    band = np.zeros((height, width), bool)
    band[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[band, 0] = 255
    return pixels, band


@pytest.fixture(scope="module")
def api(zoo_dir, tmp_path_factory):
    home = fresh_home(zoo_dir, tmp_path_factory.mktemp("home"))
    with fovea_serve(home, ADMIN_PASSWORD) as url, httpx.Client(timeout=60) as client:
        client.base_url = url
        token = client.post(
            "/backend/auth/token/",
            data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "client_id": "fovea"},
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def dataset(api, task_id, tmp_path, classes=(), features=()):
    """Upload the SIZES images as an unlabelled dataset of the task (all of it is the test split); returns its id."""
    files = {}
    for i, (height, width) in enumerate(SIZES):
        buffer = io.BytesIO()
        Image.fromarray(bright_band(height, width)[0]).save(buffer, format="PNG")
        files[f"images/{i}.png"] = buffer.getvalue()
    yaml = write_dataset_yaml(tmp_path / "set.yml", "Set", classes, list(files), features=features)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, data in files.items():
            zipped.writestr(f"set/{name}", data)
        zipped.writestr("set/set.yml", yaml.read_bytes())
    response = api.post(
        "/backend/datasets",
        data={"name": f"set-{task_id}", "task_id": str(task_id), "ctype": "RGB"},
        files={"dataset_data": ("d.zip", archive.getvalue())},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def run_inference(api, task_id, onnx_path, dataset_id):
    """Register the ONNX file through the API and run it on the dataset; returns the finished process id."""
    model_id = api.post("/backend/models", json={"name": onnx_path.stem, "task_id": task_id}).json()["id"]
    weights = api.post(
        "/backend/weights",
        data={"name": onnx_path.stem, "model_id": str(model_id)},
        files={"onnx_data": ("m.onnx", onnx_path.read_bytes())},
    )
    assert weights.status_code == 201, weights.text
    project_id = api.post("/backend/projects", json={"name": onnx_path.stem, "task_id": task_id}).json()["id"]
    launched = api.post(
        "/backend/inference",
        json={"modelweights_id": weights.json()["weight_id"], "dataset_id": dataset_id, "project_id": project_id},
    )
    assert launched.status_code == 201, launched.text
    process_id = launched.json()["process_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        [status] = api.get("/backend/status", params={"process_id": process_id}).json()
        if status["status"]["process_status"] in ("finished", "failed", "stopped"):
            assert status["status"]["process_status"] == "finished", status
            return process_id
        time.sleep(0.2)
    raise AssertionError("the inference did not end in time")


def outputs(api, process_id, fmt=None):
    params = {"process_id": process_id, **({"format": fmt} if fmt else {})}
    response = api.get("/backend/output", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def segmentation_process(api, tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg")
    card = ModelCard(
        name="bright",
        task="segmentation",
        classes=["background", "bright"],
        input={"size": (64, 64)},
        decoder={"kind": "argmax"},
    )
    dataset_id = dataset(api, SEGMENTATION, folder, classes=["background", "bright"])
    return run_inference(api, SEGMENTATION, bright_pixels_segmenter(folder / "bright.onnx", card), dataset_id)


def assert_band(mask, band):
    """The predicted band, give or take two pixels at its edges (the 64x64 network's resolution)."""
    assert mask[ndimage.binary_erosion(band, iterations=2)].all()
    assert not mask[~ndimage.binary_dilation(band, iterations=2)].any()


def test_segmentation_masks_from_the_media_route(api, segmentation_process):
    rows = outputs(api, segmentation_process)["outputs"]
    assert [name for name, _ in rows] == [f"images/{i}.png" for i in range(len(SIZES))]
    for image_id, ((_, url), (height, width)) in enumerate(zip(rows, SIZES, strict=True)):
        assert httpx.URL(url).path == f"/backend/media/{segmentation_process}/{image_id}.png"
        served = api.get(httpx.URL(url).path)
        assert served.status_code == 200 and served.headers["content-type"] == "image/png"
        mask = np.asarray(Image.open(io.BytesIO(served.content)))
        assert mask.shape == (height, width) and mask.dtype == np.uint8
        assert set(np.unique(mask)) == {0, 1}  # two classes: the class index per pixel
        assert_band(mask == 1, bright_band(height, width)[1])
    anonymous = httpx.get(str(api.base_url.join(httpx.URL(rows[0][1]).path)))
    assert anonymous.status_code == 401
    assert api.get(f"/backend/media/{segmentation_process}/{len(SIZES)}.png").status_code == 404


def test_one_class_masks_are_0_and_255(api, tmp_path):
    """With one class the `media/` mask is 0/255 (class index 0 would make every pixel 0)."""
    card = ModelCard(
        name="band",
        task="segmentation",
        classes=["band"],
        input={"size": (64, 64)},
        decoder={"kind": "sigmoid_threshold"},
    )
    logits = np.full((1, 1, 64, 64), -10.0, np.float32)
    logits[:, :, 16:48, 16:48] = 10.0  # the middle half of the stretched input: bright_band's band in each image
    model = constant_outputs(tmp_path / "band.onnx", card, {"logits": logits})
    process_id = run_inference(api, SEGMENTATION, model, dataset(api, SEGMENTATION, tmp_path, classes=["band"]))
    for image_id, (height, width) in enumerate(SIZES):
        served = api.get(f"/backend/media/{process_id}/{image_id}.png")
        assert served.status_code == 200, served.text
        mask = np.asarray(Image.open(io.BytesIO(served.content)))
        assert mask.shape == (height, width) and set(np.unique(mask)) == {0, 255}
        assert_band(mask == 255, bright_band(height, width)[1])


def test_segmentation_as_coco_and_supervisely(api, segmentation_process):
    coco = outputs(api, segmentation_process, "coco")
    assert coco["categories"][1]["name"] == "bright"
    for image_id, (height, width) in enumerate(SIZES):
        [row] = [r for r in coco["results"] if r["image_id"] == image_id and r["category_id"] == 2]
        assert row["segmentation"]["size"] == [height, width]
        assert_band(rle_decode(row["segmentation"]), bright_band(height, width)[1])
    supervisely = outputs(api, segmentation_process, "supervisely")
    assert [item["image_name"] for item in supervisely] == [f"images/{i}.png" for i in range(len(SIZES))]
    for item, (height, width) in zip(supervisely, SIZES, strict=True):
        annotation = item["annotation"]
        assert annotation["size"] == {"height": height, "width": width}
        [bright] = [o for o in annotation["objects"] if o["classTitle"] == "bright"]
        bitmap = bright["bitmap"]
        assert_band(decode_bitmap(bitmap["data"], bitmap["origin"], (height, width)), bright_band(height, width)[1])


def test_multilabel_rows_are_sigmoid_scores(api, tmp_path):
    card = ModelCard(name="pets", task="multilabel", classes=["cat", "dog", "bird"], decoder={"kind": "sigmoid"})
    logits = np.array([[2.0, -3.0, 0.5]], np.float32)
    model = constant_outputs(tmp_path / "pets.onnx", card, {"logits": logits})
    process_id = run_inference(api, MULTILABEL, model, dataset(api, MULTILABEL, tmp_path, classes=card.class_names))
    rows = outputs(api, process_id)["outputs"]
    assert len(rows) == len(SIZES)
    for _, value in rows:
        np.testing.assert_allclose(json.loads(value), 1 / (1 + np.exp(-logits)), rtol=1e-4)
    supervisely = outputs(api, process_id, "supervisely")
    assert [sorted(t["name"] for t in item["annotation"]["tags"]) for item in supervisely] == [["bird", "cat"]] * 3


def test_regression_rows_are_the_values_in_feature_order(api, tmp_path):
    card = ModelCard(name="body", task="regression", regressions=("age", "weight"), decoder={"kind": "identity"})
    values = {"age": np.array([[42.5]], np.float32), "weight": np.array([[70.25]], np.float32)}
    model = constant_outputs(tmp_path / "body.onnx", card, values)
    dataset_id = dataset(api, REGRESSION, tmp_path, features=["age", "weight"])
    rows = outputs(api, run_inference(api, REGRESSION, model, dataset_id))["outputs"]
    assert [json.loads(value) for _, value in rows] == [[[42.5, 70.25]]] * len(SIZES)
