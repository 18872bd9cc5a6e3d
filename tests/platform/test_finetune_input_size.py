"""Fine-tuning a pretraining at another input size, through a real `fovea serve` (issue 14, section 6).

The demo EfficientNet-Lite0 weights are exported at 224x224, but the network is fully convolutional up to its global
pooling: the tutorial's flow sets Input height/width to the dataset's small size and must get weights made for it.
A dense head sized for one feature map (LeNet) must still be refused, with the size it takes.
"""

from __future__ import annotations

import time

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from fovea.core.card import card_from_onnx_metadata
from fovea.datasets import Sample, write_dataset_yaml
from tests.platform.conftest import zip_of
from tests.platform.server import fovea_serve, fresh_home

ADMIN_PASSWORD = "input-size-admin-3"


@pytest.fixture(scope="module")
def client(zoo_dir, tmp_path_factory):
    home = fresh_home(zoo_dir, tmp_path_factory.mktemp("home"))
    with fovea_serve(home, ADMIN_PASSWORD) as url:
        token = httpx.post(
            f"{url}/backend/auth/token/",
            data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "client_id": "fovea"},
        ).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        with httpx.Client(base_url=f"{url}/backend/", headers=headers, timeout=60) as http:
            yield http


def squares_zip(tmp_path) -> bytes:
    """Four 48x48 RGB images: a red square (class 0) or a blue one (class 1) on grey; 2 to train, 2 to test."""
    root = tmp_path / "squares"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(4):
        pixels = np.full((48, 48, 3), 128, np.uint8)
        top, left = rng.integers(0, 24, size=2)
        pixels[top : top + 24, left : left + 24] = (220, 30, 30) if i % 2 == 0 else (30, 30, 220)
        location = f"images/{i}.png"
        Image.fromarray(pixels).save(root / location)
        samples.append(Sample(location=location, label=i % 2))
    split = {"training": [0, 1], "validation": [], "test": [2, 3]}
    write_dataset_yaml(root / "squares.yml", "Squares", ["red", "blue"], samples, split)
    return zip_of({f"squares/{p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()})


def find(client, path, name):
    return next(item for item in client.get(path).json() if item["name"] == name)


def poll(client, process_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [status] = client.get("status", params={"process_id": process_id}).json()
        if status["status"]["process_status"] in ("finished", "failed", "stopped"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"process {process_id} did not end in time")


def size_props(height, width, **more):
    values = {"Input height": height, "Input width": width, "Epochs": 1, "Batch size": 2, **more}
    return [{"name": name, "value": str(value)} for name, value in values.items()]


@pytest.fixture(scope="module")
def setup(client, tmp_path_factory):
    project = client.post("projects", json={"name": "small images", "task_id": 1}).json()
    uploaded = client.post(
        "datasets",
        data={"name": "Squares", "task_id": "1", "ctype": "RGB"},
        files={"dataset_data": ("d.zip", squares_zip(tmp_path_factory.mktemp("data")))},
    )
    assert uploaded.status_code == 201, uploaded.text
    return project["id"], uploaded.json()["id"]


def test_efficientnet_fine_tunes_at_64x64_and_serves_at_64x64(client, setup):
    project_id, dataset_id = setup
    model = find(client, "models?task_id=1", "EfficientNet-Lite0")
    imagenet = find(client, f"weights?model_id={model['id']}", "EfficientNet-Lite0_ImageNet")
    launched = client.post(
        "train",
        json={"project_id": project_id, "dataset_id": dataset_id, "weights_id": imagenet["id"],
              "properties": size_props(64, 64)},
    )  # fmt: skip
    assert launched.status_code == 201, launched.text
    status = poll(client, launched.json()["process_id"])
    assert status["status"]["process_status"] == "finished", status

    weight_id = launched.json()["weight_id"]
    data = client.get("weightsDownload", params={"modelweights_id": weight_id}).content
    model_proto = onnx.load_from_string(data)
    card = card_from_onnx_metadata({p.key: p.value for p in model_proto.metadata_props}, "trained")
    assert card is not None and tuple(card.input.size) == (64, 64) and [c.name for c in card.classes] == ["red", "blue"]
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    [logits] = session.run(None, {session.get_inputs()[0].name: np.zeros((2, 3, 64, 64), np.float32)})
    assert logits.shape == (2, 2)

    inference = client.post(
        "inference", json={"modelweights_id": weight_id, "dataset_id": dataset_id, "project_id": project_id}
    )
    assert inference.status_code == 201, inference.text
    status = poll(client, inference.json()["process_id"])
    assert status["status"]["process_status"] == "finished", status
    outputs = client.get("output", params={"process_id": inference.json()["process_id"]}).json()["outputs"]
    assert [name for name, _ in outputs] == ["images/2.png", "images/3.png"]
    for _, scores in outputs:
        probabilities = np.asarray(eval(scores), float)  # the reference's Python-literal scores
        assert probabilities.shape == (1, 2) and abs(probabilities.sum() - 1) < 1e-4


def test_a_dense_head_sized_for_its_input_is_still_refused(client, setup):
    project_id, _ = setup
    model = find(client, "models?task_id=1", "LeNet")
    weights = find(client, f"weights?model_id={model['id']}", "LeNet_RandomInit")
    digits = find(client, "datasets?task_id=1", "Digits")
    refused = client.post(
        "train",
        json={"project_id": project_id, "dataset_id": digits["id"], "weights_id": weights["id"],
              "properties": size_props(16, 16)},
    )  # fmt: skip
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "the weights take 8x8 inputs" in error and "does not run at 16x16" in error, error
