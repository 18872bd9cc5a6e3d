"""The same jobs on real Celery workers over Redis (and RabbitMQ), with PostgreSQL: the scale-out setup."""

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient

from fovea.platform.bootstrap import bootstrap
from fovea.platform.config import PlatformSettings
from fovea.server.backend.app import create_backend_app
from tests.platform.conftest import ADMIN_PASSWORD, PG_ADMIN, bearer, login
from tests.platform.test_processes import wait

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def celery_backend(request, tmp_path):
    """The platform on PostgreSQL with Celery workers; Redis as the broker unless the test asks for RabbitMQ."""
    broker = getattr(request, "param", None) or f"redis://127.0.0.1:6379/{random.randint(1, 15)}"
    name = f"fovea_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    settings = PlatformSettings(
        home=tmp_path / "home",
        database_url=url,
        admin_password=ADMIN_PASSWORD,
        executor="celery",
        broker_url=broker,
        stale_after_s=5,
    )
    db, _ = bootstrap(settings)
    workers = []

    def start_worker():
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "fovea.cli", "worker", "--broker", broker],
                env={**os.environ, "FOVEA_BROKER_URL": broker},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: a test can kill it with its pool
            )
        )
        return workers[-1]

    start_worker()
    try:
        with TestClient(create_backend_app(settings, db)) as client:
            client.start_worker = start_worker
            client.workers = workers
            yield client
    finally:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(20)
        db.dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.parametrize("celery_backend", [None, RABBITMQ], ids=["redis", "rabbitmq"], indirect=True)
def test_inference_runs_on_a_celery_worker(celery_backend, zoo_dir, digits_zip):
    from tests.platform.test_datasets import upload

    client = celery_backend
    headers = bearer(login(client))
    dataset_id = upload(client, headers, digits_zip).json()["id"]
    model_id = client.post("/backend/models", json={"name": "LeNet", "task_id": 1}, headers=headers).json()["id"]
    weights = client.post(
        "/backend/weights",
        data={"name": "digits", "model_id": str(model_id)},
        files={"onnx_data": ("m.onnx", (zoo_dir / "digits-lenet.onnx").read_bytes())},
        headers=headers,
    ).json()["weight_id"]
    project = client.post("/backend/projects", json={"name": "p", "task_id": 1}, headers=headers).json()["id"]
    body = {"modelweights_id": weights, "dataset_id": dataset_id, "project_id": project}
    process_id = client.post("/backend/inference", json=body, headers=headers).json()["process_id"]
    status = wait(client, headers, process_id, timeout=180)
    assert status["status"]["process_status"] == "finished", status
    assert float(status["status"]["process_data"].rsplit("=", 1)[1]) >= 0.95
    assert len(client.get(f"/backend/output?process_id={process_id}", headers=headers).json()["outputs"]) == 269


def test_a_killed_worker_fails_its_process_and_a_new_worker_runs_the_next(celery_backend, zoo_dir, digits_zip):
    from tests.platform.test_datasets import upload

    client = celery_backend
    headers = bearer(login(client))
    dataset_id = upload(client, headers, digits_zip, ctype="GRAY").json()["id"]
    model_id = client.post("/backend/models", json={"name": "LeNet", "task_id": 1}, headers=headers).json()["id"]
    weights = client.post(
        "/backend/weights",
        data={"name": "random", "model_id": str(model_id)},
        files={"onnx_data": ("m.onnx", (zoo_dir / "lenet-random.onnx").read_bytes())},
        headers=headers,
    ).json()["weight_id"]
    project = client.post("/backend/projects", json={"name": "p", "task_id": 1}, headers=headers).json()["id"]
    long_training = {"project_id": project, "dataset_id": dataset_id, "weights_id": weights,
                     "properties": [{"name": "Epochs", "value": "1000"}, {"name": "Input height", "value": "8"},
                                    {"name": "Input width", "value": "8"}]}  # fmt: skip
    launched = client.post("/backend/train", json=long_training, headers=headers)
    assert launched.status_code == 201, launched.text
    process_id = launched.json()["process_id"]

    def last_line():
        return client.get(f"/backend/status?process_id={process_id}", headers=headers).json()[0]["status"]

    deadline = time.monotonic() + 120
    while not last_line()["process_data"].startswith("Train") and time.monotonic() < deadline:
        time.sleep(0.3)  # until the worker is training
    os.killpg(client.workers[0].pid, signal.SIGKILL)  # the worker and its pool, mid-epoch
    client.workers[0].wait(10)
    status = wait(client, headers, process_id, timeout=60)
    assert status["result"] == "error" and status["status"]["process_status"] == "failed"
    assert "the worker running it was lost" in status["status"]["process_data"]
    assert client.get(f"/backend/weights/{launched.json()['weight_id']}", headers=headers).json()["is_active"] is False
    client.start_worker()
    body = {"modelweights_id": weights, "dataset_id": dataset_id, "project_id": project}
    process_id = client.post("/backend/inference", json=body, headers=headers).json()["process_id"]
    assert wait(client, headers, process_id, timeout=180)["status"]["process_status"] == "finished"
