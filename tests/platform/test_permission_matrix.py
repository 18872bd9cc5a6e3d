"""Owner, viewer, stranger and anonymous against every route that reads or changes a shared object."""

import json

import pytest

from tests.platform.conftest import register


@pytest.fixture
def world(backend, zoo_dir, digits_zip):
    owner = register(backend, "owner")
    viewer = register(backend, "viewer")
    stranger = register(backend, "stranger")
    shares = [{"username": "owner", "permission": "OWN"}, {"username": "viewer", "permission": "VIEW"}]
    project = backend.post(
        "/backend/projects", json={"name": "p", "task_id": 1, "users": shares}, headers=owner
    ).json()["id"]
    dataset = backend.post(
        "/backend/datasets",
        data={"name": "d", "task_id": "1", "ctype": "GRAY", "users": json.dumps(shares)},
        files={"dataset_data": ("d.zip", digits_zip)},
        headers=owner,
    ).json()["id"]
    model = backend.post("/backend/models", json={"name": "LeNet", "task_id": 1}, headers=owner).json()["id"]
    weights = backend.post(
        "/backend/weights",
        data={"name": "w", "model_id": str(model), "users": json.dumps(shares)},
        files={"onnx_data": ("m.onnx", (zoo_dir / "digits-lenet.onnx").read_bytes())},
        headers=owner,
    ).json()["weight_id"]
    callers = {"owner": owner, "viewer": viewer, "stranger": stranger, "anonymous": {}}
    return callers, {"project": project, "dataset": dataset, "weights": weights, "model": model}


TRAINING = [{"name": "Epochs", "value": "1"}, {"name": "Input height", "value": "8"},
            {"name": "Input width", "value": "8"}]  # fmt: skip

# (method, path, body, expected status for owner / viewer / stranger / anonymous)
ROUTES = [
    ("get", "/backend/projects/{project}", None, (200, 200, 404, 401)),
    ("patch", "/backend/projects/{project}", {"name": "x"}, (200, 403, 404, 401)),
    ("get", "/backend/datasets/{dataset}", None, (200, 200, 404, 401)),
    ("get", "/backend/datasets/{dataset}/images?limit=1", None, (200, 200, 404, 401)),
    ("get", "/backend/weights/{weights}", None, (200, 200, 404, 401)),
    ("patch", "/backend/weights/{weights}", {"name": "y"}, (200, 403, 404, 401)),
    ("get", "/backend/weightsDownload?modelweights_id={weights}", None, (200, 200, 404, 401)),
    ("get", "/backend/inference?project_id={project}", None, (200, 200, 404, 401)),
    (
        "post",
        "/backend/inference",
        {"modelweights_id": "{weights}", "dataset_id": "{dataset}", "project_id": "{project}"},
        (201, 403, 404, 401),
    ),
    ("post", "/backend/sessions", {"modelweights_id": "{weights}"}, (201, 201, 404, 401)),
    ("get", "/backend/trainings?project_id={project}", None, (200, 200, 404, 401)),
    (
        "post",
        "/backend/train",
        {
            "weights_id": "{weights}",
            "dataset_id": "{dataset}",
            "project_id": "{project}",
            "properties": TRAINING,
        },
        (201, 403, 404, 401),
    ),
]


def fill(value, ids):
    if isinstance(value, str):
        text = value.format(**ids)
        return int(text) if text.isdigit() else text
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


@pytest.mark.parametrize(("method", "path", "body", "expected"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_route(backend, world, method, path, body, expected):
    callers, ids = world
    for caller, status in zip(
        ("stranger", "anonymous", "viewer", "owner"), (expected[2], expected[3], expected[1], expected[0]), strict=True
    ):
        kwargs = {"json": fill(body, ids)} if body is not None else {}
        response = getattr(backend, method)(fill(path, ids), headers=callers[caller], **kwargs)
        assert response.status_code == status, (caller, response.text)


def test_deleting_what_a_running_process_uses(backend, world):
    callers, ids = world
    owner = callers["owner"]
    body = {
        "modelweights_id": ids["weights"],
        "dataset_id": ids["dataset"],
        "project_id": ids["project"],
        "properties": [{"name": "Batch size", "value": "1"}],
    }
    process_id = backend.post("/backend/inference", json=body, headers=owner).json()["process_id"]
    for path in (f"/backend/datasets/{ids['dataset']}", f"/backend/weights/{ids['weights']}"):
        assert backend.delete(path, headers=callers["stranger"]).status_code == 404
        assert backend.delete(path, headers=callers["viewer"]).status_code == 403
        busy = backend.delete(path, headers=owner)
        assert busy.status_code == 409 and process_id in busy.json()["error"]
    stopped = backend.post("/backend/stopProcess", json={"process_id": process_id}, headers=callers["viewer"])
    assert stopped.status_code == 403
    assert backend.post("/backend/stopProcess", json={"process_id": process_id}, headers=owner).json() == {
        "result": "Inference stopped"
    }
    assert backend.delete(f"/backend/weights/{ids['weights']}", headers=owner).status_code == 204
    assert backend.delete(f"/backend/datasets/{ids['dataset']}", headers=owner).status_code == 204
