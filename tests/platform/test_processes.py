"""Seed 000's flow: inference processes on a dataset's test split and on one image, run by the local pool."""

import base64
import time
import uuid

import cv2
import numpy as np
import pytest

from tests.platform.conftest import bearer, login, register
from tests.platform.test_datasets import upload as upload_dataset


def wait(client, headers, process_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [status] = client.get(f"/backend/status?process_id={process_id}", headers=headers).json()
        if status["status"]["process_status"] in ("finished", "failed", "stopped"):
            return status
        time.sleep(0.3)
    raise AssertionError("the process did not end in time")


@pytest.fixture
def digits_setup(backend, digits_zip, zoo_dir):
    headers = bearer(login(backend))
    dataset_id = upload_dataset(backend, headers, digits_zip).json()["id"]
    model_id = backend.post("/backend/models", json={"name": "LeNet", "task_id": 1}, headers=headers).json()["id"]
    onnx = (zoo_dir / "digits-lenet.onnx").read_bytes()
    weights = backend.post(
        "/backend/weights",
        data={"name": "digits", "model_id": str(model_id), "dataset_id": str(dataset_id)},
        files={"onnx_data": ("m.onnx", onnx)},
        headers=headers,
    ).json()["weight_id"]
    project = backend.post("/backend/projects", json={"name": "testProject", "task_id": 1}, headers=headers).json()[
        "id"
    ]
    return headers, {"dataset_id": dataset_id, "modelweights_id": weights, "project_id": project}


def test_inference_on_the_test_split(backend, digits_setup, zoo_dir):
    headers, ids = digits_setup
    launched = backend.post(
        "/backend/inference", json={**ids, "properties": [{"name": "Batch size", "value": "32"}]}, headers=headers
    )
    assert launched.status_code == 201, launched.text
    process_id = launched.json()["process_id"]
    assert str(uuid.UUID(process_id)) == process_id
    status = wait(backend, headers, process_id)
    assert status["result"] == "ok" and status["status"]["process_type"] == "testing"
    last = status["status"]["process_data"]
    assert last.startswith("Test - batch [9/9] - metric=") and float(last.rsplit("=", 1)[1]) >= 0.95
    full = backend.get(f"/backend/status?process_id={process_id}&full=true", headers=headers).json()[0]
    assert len(full["status"]["process_data"]) == 9
    rows = backend.get(f"/backend/output?process_id={process_id}", headers=headers).json()["outputs"]
    assert len(rows) == 269 and rows[0][0].startswith("images/digit_")
    scores = eval(rows[0][1])
    assert len(scores[0]) == 10 and abs(sum(scores[0]) - 1) < 1e-3
    aicoco = backend.get(f"/backend/outputs?process_id={process_id}&format=aicoco", headers=headers).json()
    assert len(aicoco["images"]) == 269 and aicoco["images"][0]["category_ids"]
    listed = backend.get(f"/backend/inference?project_id={ids['project_id']}", headers=headers).json()
    assert [p["id"] for p in listed] == [process_id] and listed[0]["process_status"] == "finished"
    stop = backend.post("/backend/stopProcess", json={"process_id": process_id}, headers=headers)
    assert stop.status_code == 404 and stop.json() == {"result": "Process already stopped or non existing"}


def test_inference_single_from_a_data_url(backend, digits_setup, zoo_dir):
    headers, ids = digits_setup
    png = (zoo_dir / "digits" / "images" / "digit_0000.png").read_bytes()  # a zero
    body = {"modelweights_id": ids["modelweights_id"], "project_id": ids["project_id"],
            "image_data": "data:image/png;base64," + base64.b64encode(png).decode()}  # fmt: skip
    launched = backend.post("/backend/inferenceSingle", json=body, headers=headers)
    assert launched.status_code == 201, launched.text
    process_id = launched.json()["process_id"]
    assert wait(backend, headers, process_id)["status"]["process_status"] == "finished"
    [[name, value]] = backend.get(f"/backend/output?process_id={process_id}", headers=headers).json()["outputs"]
    scores = eval(value)[0]
    assert name.startswith("UserImage") and name.endswith(".png") and scores.index(max(scores)) == 0
    assert all(d["name"] != name for d in backend.get("/backend/datasets", headers=headers).json())  # hidden


def test_single_image_with_settings_canonical_output_and_its_input_image(backend, digits_setup, zoo_dir):
    headers, ids = digits_setup
    weights = backend.get(f"/backend/weights/{ids['modelweights_id']}", headers=headers).json()
    assert weights["settings"] == {"top_k": 3}  # the defaults of its card
    png = (zoo_dir / "digits" / "images" / "digit_0000.png").read_bytes()  # a zero
    body = {"modelweights_id": ids["modelweights_id"], "project_id": ids["project_id"],
            "image_data": "data:image/png;base64," + base64.b64encode(png).decode()}  # fmt: skip
    storage = backend.settings.storage_dir
    folders = set((storage / "datasets").iterdir())
    for settings, message in (({"top_k": 0}, "top_k must be a positive integer"), ({"colour": 1}, "acceptable keys")):
        refused = backend.post("/backend/inferenceSingle", json={**body, "settings": settings}, headers=headers)
        assert refused.status_code == 400 and message in refused.json()["error"]
    assert set((storage / "datasets").iterdir()) == folders  # a refused image leaves no file behind
    assert backend.get(f"/backend/inference?project_id={ids['project_id']}", headers=headers).json() == []
    launched = backend.post("/backend/inferenceSingle", json={**body, "settings": {"top_k": 2}}, headers=headers)
    process_id = launched.json()["process_id"]
    assert wait(backend, headers, process_id)["status"]["process_status"] == "finished"
    [prediction] = backend.get(f"/backend/output?process_id={process_id}&format=json", headers=headers).json()[
        "predictions"
    ]
    assert prediction["classes"][0]["name"] == "0" and len(prediction["classes"]) == 2
    thumb = backend.get(f"/backend/processes/{process_id}/images/0/thumbnail?size=64", headers=headers)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    original = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert decoded.shape == original.shape  # never enlarged
    assert np.abs(decoded.astype(int) - original.astype(int)).mean() < 12  # the same picture, through JPEG
    stranger = register(backend, "stranger")
    assert backend.get(f"/backend/processes/{process_id}/images/0/thumbnail", headers=stranger).status_code == 404


def test_dataset_thumbnails(backend, digits_setup, zoo_dir):
    headers, ids = digits_setup
    base = f"/backend/datasets/{ids['dataset_id']}/images"
    first = backend.get(f"{base}?limit=1", headers=headers).json()[0]
    thumb = backend.get(f"{base}/{first['id']}/thumbnail", headers=headers)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR).shape == (8, 8, 3)
    assert backend.get(f"{base}/0/thumbnail?size=8", headers=headers).status_code == 400
    assert backend.get(f"{base}/99999/thumbnail", headers=headers).status_code == 404
    assert backend.get(f"{base}/0/thumbnail", headers=register(backend, "outsider")).status_code == 404


def test_launch_errors(backend, digits_setup):
    headers, ids = digits_setup
    seg_project = backend.post("/backend/projects", json={"name": "seg", "task_id": 2}, headers=headers).json()["id"]
    cases = [
        ({**ids, "project_id": seg_project}, 400, "Project task Segmentation does not match model task Classification"),
        ({**ids, "project_id": 999}, 404, None),
        ({**ids, "modelweights_id": 999}, 404, None),
        ({**ids, "task_manager": "STREAMFLOW"}, 400, "task_manager"),
        ({**ids, "properties": [{"name": "Batch size", "value": "many"}]}, 400, "Batch size"),
        ({k: v for k, v in ids.items() if k != "dataset_id"}, 400, "dataset_id"),
    ]
    for body, code, message in cases:
        response = backend.post("/backend/inference", json=body, headers=headers)
        assert response.status_code == code, (body, response.text)
        if message:
            assert message in response.json()["error"]
    single = {"modelweights_id": ids["modelweights_id"], "project_id": ids["project_id"]}
    assert backend.post("/backend/inferenceSingle", json=single, headers=headers).status_code == 400
    loopback = backend.post(
        "/backend/inferenceSingle", json={**single, "image_url": "http://127.0.0.1/x.png"}, headers=headers
    )
    assert loopback.status_code == 400 and "loopback" in loopback.json()["error"]
    bad = backend.post(
        "/backend/inferenceSingle", json={**single, "image_data": "data:image/png;base64,@@@"}, headers=headers
    )
    assert bad.status_code == 400
    assert backend.get("/backend/status?process_id=not-a-uuid", headers=headers).status_code == 400
    missing = backend.get(f"/backend/status?process_id={uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404 and missing.json() == {"result": "error", "error": "Process not found"}


def test_a_killed_worker_fails_its_process_and_the_next_one_runs(backend, digits_setup):
    import os
    import signal

    headers, ids = digits_setup
    executor = backend.app.app.state.executor  # the TestClient's app is the SessionHost around FastAPI
    launched = backend.post(
        "/backend/inference", json={**ids, "properties": [{"name": "Batch size", "value": "1"}]}, headers=headers
    )
    process_id = launched.json()["process_id"]
    deadline = time.monotonic() + 60
    while (
        backend.get(f"/backend/status?process_id={process_id}", headers=headers).json()[0]["status"]["process_status"]
        != "running"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for pid in list(executor.pool._processes):  # kill the worker mid-process
        os.kill(pid, signal.SIGKILL)
    status = wait(backend, headers, process_id)
    assert status["result"] == "error" and status["status"]["process_status"] == "failed"
    assert status["status"]["process_data"] == "Error - the worker running it died"
    again = backend.post("/backend/inference", json=ids, headers=headers).json()["process_id"]
    assert wait(backend, headers, again)["status"]["process_status"] == "finished"
