"""Projects with sharing, tasks and models; a permission matrix (owner, viewer, stranger, anonymous)."""

import pytest

from tests.platform.conftest import bearer, login, register


def test_seeded_tasks_and_models(backend):
    headers = bearer(login(backend))
    tasks = backend.get("/backend/tasks", headers=headers).json()
    assert tasks[:2] == [{"id": 1, "name": "Classification"}, {"id": 2, "name": "Segmentation"}] and len(tasks) == 5
    assert backend.get("/backend/tasks/9", headers=headers).status_code == 404
    created = backend.post("/backend/models", json={"name": "ResNet50", "task_id": 1}, headers=headers)
    assert created.status_code == 201 and created.json() == {
        "id": created.json()["id"],
        "name": "ResNet50",
        "task_id": 1,
    }
    assert backend.post("/backend/models", json={"name": "resnet50", "task_id": 1}, headers=headers).status_code == 400
    assert backend.post("/backend/models", json={"name": "resnet50", "task_id": 2}, headers=headers).status_code == 201
    assert backend.post("/backend/models", json={"name": "X", "task_id": 77}, headers=headers).status_code == 400
    assert [m["task_id"] for m in backend.get("/backend/models?task_id=2", headers=headers).json()] == [2]
    assert backend.get("/backend/models?task_id=abc", headers=headers).status_code == 400


def test_project_lifecycle_and_sharing(backend):
    owner = register(backend, "owner")
    register(backend, "viewer")
    project = backend.post("/backend/projects", json={"name": "testProject", "task_id": 1}, headers=owner)
    assert project.status_code == 201
    body = project.json()
    assert body["users"] == [{"username": "owner", "permission": "OWN"}]
    pid = body["id"]
    shared = backend.patch(
        f"/backend/projects/{pid}/",
        json={"users": [{"username": "owner", "permission": "OWN"}, {"username": "viewer", "permission": "VIEW"}]},
        headers=owner,
    )
    assert shared.status_code == 200 and len(shared.json()["users"]) == 2
    renamed = backend.put(f"/backend/projects/{pid}", json={"name": "renamed", "task_id": 2}, headers=owner)
    assert renamed.json()["name"] == "renamed" and renamed.json()["task_id"] == 2
    assert len(renamed.json()["users"]) == 2  # PUT without users keeps them
    bad_shares = [
        [{"username": "viewer", "permission": "VIEW"}],
        [{"username": "ghost", "permission": "OWN"}],
        [{"username": "owner", "permission": "OWN"}, {"username": "owner", "permission": "VIEW"}],
        [{"username": "owner", "permission": "ADMIN"}],
    ]
    for users in bad_shares:
        assert backend.patch(f"/backend/projects/{pid}", json={"users": users}, headers=owner).status_code == 400
    assert backend.get(f"/backend/projects/{pid}", headers=owner).json()["users"][1]["username"] == "viewer"
    assert backend.post("/backend/projects", json={"name": "", "task_id": 1}, headers=owner).status_code == 400
    assert backend.post("/backend/projects", json={"name": "p", "task_id": 99}, headers=owner).status_code == 400
    assert backend.delete(f"/backend/projects/{pid}", headers=owner).status_code == 204
    assert backend.get(f"/backend/projects/{pid}", headers=owner).status_code == 404


@pytest.mark.parametrize(
    ("method", "body"),
    [("get", None), ("put", {"name": "n", "task_id": 1}), ("patch", {"name": "n"}), ("delete", None)],
)
def test_permission_matrix(backend, method, body):
    owner = register(backend, "owner")
    viewer = register(backend, "viewer")
    stranger = register(backend, "stranger")
    users = [{"username": "owner", "permission": "OWN"}, {"username": "viewer", "permission": "VIEW"}]
    pid = backend.post("/backend/projects", json={"name": "p", "task_id": 1, "users": users}, headers=owner).json()[
        "id"
    ]
    expected = {
        "owner": {"get": 200, "put": 200, "patch": 200, "delete": 204}[method],
        "viewer": 200 if method == "get" else 403,
        "stranger": 404,  # existence never leaks
        "anonymous": 401,
    }
    callers = {"viewer": viewer, "stranger": stranger, "anonymous": {}, "owner": owner}  # owner last: may delete
    for name, headers in callers.items():
        kwargs = {"json": body} if body is not None else {}
        response = getattr(backend, method)(f"/backend/projects/{pid}", headers=headers, **kwargs)
        assert response.status_code == expected[name], (name, response.text)
    listed = backend.get("/backend/projects", headers=stranger).json()
    assert listed == []
