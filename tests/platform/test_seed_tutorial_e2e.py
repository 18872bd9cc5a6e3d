"""Seeds 003 ("Train a neural network") and 000 ("Inference with our data"), step by step over HTTP against a
real `fovea serve` process: on the embedded defaults, and on PostgreSQL with a Celery worker over Redis."""

import http.server
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.platform.conftest import PG_ADMIN
from tests.platform.server import fovea_serve, fresh_home

ADMIN_PASSWORD = "tutorial-admin-7"


@pytest.fixture(scope="module", params=["sqlite+local", "postgresql+celery"])
def platform_url(request, zoo_dir, tmp_path_factory):
    """A real `fovea serve` on a fresh home: on its embedded defaults, or on PostgreSQL with a Celery worker."""
    home = fresh_home(zoo_dir, tmp_path_factory.mktemp("home"))
    if request.param == "sqlite+local":
        with fovea_serve(home, ADMIN_PASSWORD) as url:
            yield url, home
        return
    database = f"fovea_seed_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    broker = f"redis://127.0.0.1:6379/{random.randint(1, 15)}"
    env = {
        "FOVEA_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        + f"/{database}",
        "FOVEA_EXECUTOR": "celery",
        "FOVEA_BROKER_URL": broker,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "fovea.cli", "worker", "--broker", broker],
        env={**os.environ, "FOVEA_HOME": str(home), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with fovea_serve(home, ADMIN_PASSWORD, **env) as url:
            yield url, home
    finally:
        worker.terminate()
        worker.wait(20)
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


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


def login(url):
    token = httpx.post(
        f"{url}/backend/auth/token/",
        data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "client_id": "fovea"},
    ).json()
    assert token["token_type"] == "Bearer" and token["scope"] == "read write"
    return httpx.Client(
        base_url=f"{url}/backend/", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=60
    )


def augmentations(*steps):
    return "SequentialAugmentationContainer\n" + "".join(f"    {step}\n" for step in steps) + "end"


def test_train_a_neural_network(platform_url):
    url, home = platform_url
    client = login(url)
    # Choose or create a project, setting a task
    project = client.post("projects", json={"name": "testProject", "task_id": 1}).json()
    assert client.get("projects").json() == [
        {
            "id": project["id"],
            "name": "testProject",
            "task_id": 1,
            "users": [{"username": "admin", "permission": "OWN"}],
        }
    ]
    assert {"id": 1, "name": "Classification"} in client.get("tasks").json()
    # Retrieve all models for a task and choose one
    models = {m["name"]: m for m in client.get("models", params={"task_id": 1}).json()}
    lenet = models["LeNet"]
    # Choose a dataset of the same task
    [digits] = [d for d in client.get("datasets", params={"task_id": 1}).json() if d["name"] == "Digits"]
    # Finetuning: choose an existing pretraining of that model
    pretraining = next(
        w for w in client.get("weights", params={"model_id": lenet["id"]}).json() if w["name"] == "LeNet_Digits"
    )
    assert pretraining["dataset_id"] == digits["id"] and pretraining["pretrained_on"] is None
    # Retrieve the properties, then the defaults for this model-dataset pair
    properties = client.get("properties").json()
    assert properties[0] == {"id": 1, "name": "Learning rate", "type": "float", "default": "0.0001", "values": None}
    pair = client.get(
        "allowedProperties", params={"property_id": 7, "model_id": lenet["id"], "dataset_id": digits["id"]}
    )
    assert pair.json() == []  # nothing specific to this pair: the model's own rows apply
    [width] = client.get("allowedProperties", params={"property_id": 7, "model_id": lenet["id"]}).json()
    # Launch training, with the seed's list of properties (its augmentations sized for 8x8 grey digits)
    normalize = ("AugToFloat32 divisor=255", "AugNormalize mean=0.5 std=0.5")
    train_aug = augmentations(
        'AugResizeDim dims=(8,8) interp="cubic"',
        "AugRotate angle=[-10,10]",
        "AugGammaContrast gamma=[0.8,1.2]",
        *normalize,
    )
    test_aug = augmentations("AugResizeDim dims=(8,8)", *normalize)
    size = width["default_value"]
    launched = client.post("train", json={
        "project_id": project["id"], "dataset_id": digits["id"], "weights_id": pretraining["id"],
        "properties": [
            {"name": "Learning rate", "value": "1e-4"}, {"name": "Loss function", "value": "softmax_cross_entropy"},
            {"name": "Metric", "value": "accuracy"}, {"name": "Epochs", "value": "2"},
            {"name": "Input height", "value": size}, {"name": "Input width", "value": size},
            {"name": "batch size", "value": "16"}, {"name": "Training augmentations", "value": train_aug},
            {"name": "Validation augmentations", "value": test_aug}, {"name": "Test augmentations", "value": test_aug},
        ],
    })  # fmt: skip
    assert launched.status_code == 201, launched.text
    process_id = launched.json()["process_id"]
    assert launched.json()["result"] == "ok" and str(uuid.UUID(process_id)) == process_id
    # Monitor training status
    status = poll(client, process_id)
    assert status["result"] == "ok" and status["status"]["process_type"] == "training"
    assert status["status"]["process_status"] == "finished", status
    last = client.get("status", params={"process_id": process_id, "full": "false"}).json()[0]["status"]["process_data"]
    assert re.fullmatch(r"Validation - epoch \[2/2\] - batch \[17/17\] - loss=\d+\.\d{3} - metric=\d\.\d{3}", last)
    assert float(last.rsplit("=", 1)[1]) >= 0.95  # fine-tuned from the Digits weights: stays accurate
    # The new weights: inactive while training, active now, usable for inference and in a session
    trained = client.get(f"weights/{launched.json()['weight_id']}").json()
    assert trained["is_active"] and trained["pretrained_on"] == pretraining["id"]
    assert trained["layer_to_remove"] == pretraining["layer_to_remove"]  # same classes: the network is inherited
    [record] = client.get("trainings", params={"project_id": project["id"]}).json()
    assert record["celery_id"] == process_id and record["process_status"] == "finished"
    inference = client.post(
        "inference", json={"modelweights_id": trained["id"], "dataset_id": digits["id"], "project_id": project["id"]}
    )
    assert float(poll(client, inference.json()["process_id"])["status"]["process_data"].rsplit("=", 1)[1]) >= 0.95
    session = client.post("sessions", json={"modelweights_id": trained["id"]}).json()
    seven = (home / "zoo" / "digits" / "images" / "digit_0007.png").read_bytes()
    answer = httpx.post(f"{session['session_url']}/inference_image", files={"files": ("7.png", seven)}, timeout=60)
    assert answer.status_code == 200 and answer.json()["annotation"]["tags"][0]["name"] == "7"


def test_inference_with_our_data(request, platform_url, image_server):
    url, home = platform_url
    # Log in - retrieve access token
    client = login(url)
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
    assert Path(home / "fovea.db").exists() == (request.node.callspec.params["platform_url"] == "sqlite+local")
