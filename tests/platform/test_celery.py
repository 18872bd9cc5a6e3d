"""The same inference job on real Celery workers over Redis, with PostgreSQL: the scale-out setup."""

import os
import random
import subprocess
import sys
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient

from fovea.platform.bootstrap import bootstrap
from fovea.platform.config import PlatformSettings
from fovea.server.backend.app import create_backend_app
from tests.platform.conftest import ADMIN_PASSWORD, PG_ADMIN, bearer, login
from tests.platform.test_processes import wait


@pytest.fixture
def celery_backend(tmp_path):
    broker = f"redis://127.0.0.1:6379/{random.randint(1, 15)}"
    name = f"fovea_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    settings = PlatformSettings(
        home=tmp_path / "home", database_url=url, admin_password=ADMIN_PASSWORD, executor="celery", broker_url=broker
    )
    db, _ = bootstrap(settings)
    worker = subprocess.Popen(
        [sys.executable, "-m", "fovea.cli", "worker", "--broker", broker],
        env={**os.environ, "FOVEA_BROKER_URL": broker},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with TestClient(create_backend_app(settings, db)) as client:
            yield client
    finally:
        worker.terminate()
        worker.wait(20)
        db.dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


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
