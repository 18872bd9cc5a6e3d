"""Projects with sharing, tasks and models; a permission matrix (owner, viewer, stranger, anonymous)."""

import base64

import pytest
from sqlalchemy import select

from fovea.platform.models import Dataset, Process
from tests.platform.conftest import bearer, login, register
from tests.platform.test_dataset_files import app_db, digits_zip_of, lenet
from tests.platform.test_datasets import upload
from tests.platform.test_processes import wait


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


def test_updates_tell_a_field_sent_as_null_from_one_left_out(backend):
    owner = register(backend, "owner")
    pid = backend.post("/backend/projects", json={"name": "p", "task_id": 1}, headers=owner).json()["id"]
    unknown_task = {"error": "task None does not exist", "detail": {"fields": {"task_id": ["Unknown task."]}}}
    for method, body, status, error in [
        ("put", {"name": "n"}, 400, {"error": "missing fields: task_id"}),
        ("patch", {"task_id": None}, 400, unknown_task),
        ("patch", {"users": None}, 400, {"error": "users is required"}),
        ("patch", {}, 200, None),
    ]:
        response = getattr(backend, method)(f"/backend/projects/{pid}", json=body, headers=owner)
        assert response.status_code == status and (error is None or response.json() == error), (body, response.text)
    project = backend.get(f"/backend/projects/{pid}", headers=owner).json()
    assert project == {"id": pid, "name": "p", "task_id": 1, "users": [{"username": "owner", "permission": "OWN"}]}


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


def _single_image_process(backend, headers, project_id, weights_id, zoo_dir):
    png = (zoo_dir / "digits" / "images" / "digit_0000.png").read_bytes()
    body = {"modelweights_id": weights_id, "project_id": project_id,
            "image_data": "data:image/png;base64," + base64.b64encode(png).decode()}  # fmt: skip
    launched = backend.post("/backend/inferenceSingle", json=body, headers=headers)
    assert launched.status_code == 201, launched.text
    return launched.json()["process_id"]


def test_deleting_a_project_removes_its_processes_outputs_and_single_image_datasets(backend, zoo_dir):
    owner = register(backend, "owner")
    weights_id = lenet(backend, zoo_dir, owner)
    kept = backend.post("/backend/projects", json={"name": "kept", "task_id": 1}, headers=owner).json()["id"]
    doomed = backend.post("/backend/projects", json={"name": "doomed", "task_id": 1}, headers=owner).json()["id"]
    dataset = upload(backend, owner, digits_zip_of(zoo_dir)).json()
    on_dataset = backend.post(
        "/backend/inference",
        json={"project_id": doomed, "modelweights_id": weights_id, "dataset_id": dataset["id"]},
        headers=owner,
    ).json()["process_id"]
    doomed_single = _single_image_process(backend, owner, doomed, weights_id, zoo_dir)
    kept_single = _single_image_process(backend, owner, kept, weights_id, zoo_dir)
    for process_id in (on_dataset, doomed_single, kept_single):
        assert wait(backend, owner, process_id)["status"]["process_status"] == "finished"
    storage = backend.settings.storage_dir
    assert all((storage / "processes" / p / "outputs.json").is_file() for p in (on_dataset, doomed_single))
    with app_db(backend).transaction() as db:
        singles = {p.id: db.get(Dataset, p.dataset_id).path for p in db.scalars(select(Process))}
    assert len(list((storage / "datasets").iterdir())) == 3  # the uploaded dataset and two single images

    assert backend.delete(f"/backend/projects/{doomed}", headers=owner).status_code == 204

    assert not (storage / "processes" / on_dataset).exists() and not (storage / "processes" / doomed_single).exists()
    assert not (storage / singles[doomed_single]).parent.exists()
    assert (storage / "processes" / kept_single / "outputs.json").is_file()  # another project's are left alone
    assert (storage / singles[kept_single]).is_file()
    assert backend.get(f"/backend/datasets/{dataset['id']}", headers=owner).status_code == 200  # not the project's
    assert (storage / dataset["path"]).is_file()
    with app_db(backend).transaction() as db:
        assert set(db.scalars(select(Process.id))) == {kept_single}
        assert set(db.scalars(select(Dataset.path))) == {dataset["path"], singles[kept_single]}
    assert backend.get(f"/backend/status?process_id={doomed_single}", headers=owner).status_code == 404


def test_task_id_cannot_change_once_a_project_has_processes(backend, zoo_dir):
    owner = register(backend, "owner")
    weights_id = lenet(backend, zoo_dir, owner)
    project = backend.post("/backend/projects", json={"name": "p", "task_id": 2}, headers=owner).json()["id"]
    assert backend.patch(f"/backend/projects/{project}", json={"task_id": 1}, headers=owner).status_code == 200
    process_id = _single_image_process(backend, owner, project, weights_id, zoo_dir)
    for method, body in (("patch", {"task_id": 2}), ("put", {"name": "p", "task_id": 2})):
        refused = getattr(backend, method)(f"/backend/projects/{project}", json=body, headers=owner)
        assert refused.status_code == 400 and "process" in refused.json()["error"], refused.text
    assert backend.get(f"/backend/projects/{project}", headers=owner).json()["task_id"] == 1
    same = backend.put(f"/backend/projects/{project}", json={"name": "renamed", "task_id": 1}, headers=owner)
    assert same.status_code == 200 and same.json()["name"] == "renamed"
    assert wait(backend, owner, process_id)["status"]["process_status"] == "finished"
