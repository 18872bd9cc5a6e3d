"""Seed 000 ("Inference with our data"), step by step over HTTP against a real `fovea serve` process."""

import contextlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import free_port

ADMIN_PASSWORD = "tutorial-admin-7"


@pytest.fixture(scope="module")
def platform_url(zoo_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(zoo_dir, home / "zoo")  # the demo zoo is already built: the server only seeds it
    port = free_port()
    env = {
        **os.environ,
        "FOVEA_HOME": str(home),
        "FOVEA_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "FOVEA_ALLOW_URL_HOSTS": '["127.0.0.1"]',
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "fovea.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode())
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield url, home
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture(scope="module")
def image_server(zoo_dir):
    folder = zoo_dir / "digits" / "images"

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def poll(client, process_id):
    for _ in range(600):
        [status] = client.get("status", params={"process_id": process_id, "full": "false"}).json()
        if status["status"]["process_status"] in ("finished", "failed", "stopped"):
            return status
        time.sleep(0.2)
    raise AssertionError("process did not finish")


def test_inference_with_our_data(platform_url, image_server):
    url, home = platform_url
    # Log in - retrieve access token
    token = httpx.post(
        f"{url}/backend/auth/token/",
        data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "client_id": "fovea"},
    ).json()["access_token"]
    client = httpx.Client(base_url=f"{url}/backend/", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    # Choose or create a project, setting a task
    project = client.post("projects", json={"name": "testProject", "task_id": 1}).json()
    assert client.get("tasks").json()[0] == {"id": 1, "name": "Classification"}
    # Retrieve all models for a task and choose one; then a pretraining of it
    models = {m["name"]: m["id"] for m in client.get("models", params={"task_id": 1}).json()}
    weights = client.get("weights", params={"model_id": models["LeNet"]}).json()
    assert weights[0]["name"] == "LeNet_Digits" and weights[0]["public"] is True
    # Choose a dataset for the same task
    [digits] = [d for d in client.get("datasets", params={"task_id": 1}).json() if d["name"] == "Digits"]
    assert [p["name"] for p in client.get("properties").json()][6] == "Input width"
    sizes = client.get("allowedProperties", params={"model_id": models["LeNet"], "property_id": 7}).json()
    assert [row["default_value"] for row in sizes] == ["8"]
    # Inference on a sample image, by URL (an allowlisted loopback server)
    body = {
        "modelweights_id": weights[0]["id"],
        "project_id": project["id"],
        "image_url": f"{image_server}/digit_0007.png",
    }
    single = client.post("inferenceSingle", json=body)
    assert single.status_code == 201 and single.json()["result"] == "ok"
    assert poll(client, single.json()["process_id"])["status"]["process_status"] == "finished"
    [[name, scores]] = client.get("output", params={"process_id": single.json()["process_id"]}).json()["outputs"]
    assert name.endswith("digit_0007.png") and len(eval(scores)[0]) == 10
    # Inference on a dataset
    launched = client.post(
        "inference", json={"modelweights_id": weights[0]["id"], "dataset_id": digits["id"], "project_id": project["id"]}
    )
    assert launched.status_code == 201
    status = poll(client, launched.json()["process_id"])
    assert status["result"] == "ok" and status["status"]["process_type"] == "testing"
    assert float(status["status"]["process_data"].rsplit("=", 1)[1]) >= 0.95
    outputs = client.get("outputs", params={"process_id": launched.json()["process_id"]}).json()["outputs"]
    assert len(outputs) == len(client.get(f"datasets/{digits['id']}/images", params={"split": "test"}).json())
    assert Path(home / "fovea.db").exists()
