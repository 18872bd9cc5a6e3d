"""Dataset files are read only from inside their dataset's folder, and only by callers who may see the dataset.

An uploaded YAML may not name URLs, absolute paths or `..` (refused at upload), and every read (thumbnails, session
media, inference jobs) resolves the file again and checks it is still a regular file inside the folder, so a row or
a file changed after the upload cannot reach outside either.
"""

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import select

from fovea.errors import InputError
from fovea.platform.media import SessionMedia
from fovea.platform.models import Dataset, User
from tests.platform.conftest import ADMIN_PASSWORD, bearer, login, register, zip_of
from tests.platform.server import fovea_serve, fresh_home
from tests.platform.test_datasets import upload
from tests.platform.test_processes import wait
from tests.platform.test_trainings import props

SECRET_SIZE = (40, 30)  # (height, width): a shape no digit has, so a leaked thumbnail is recognisable


def _secret_png() -> bytes:
    pixels = np.full((*SECRET_SIZE, 3), 200, np.uint8)
    return cv2.imencode(".png", pixels)[1].tobytes()


@pytest.fixture
def secret(tmp_path):
    """An image outside every dataset folder (a file the server can read but must never serve)."""
    path = tmp_path / "outside" / "secret.png"
    path.parent.mkdir()
    path.write_bytes(_secret_png())
    return path


def digits_zip_of(zoo_dir, count=4, extra=None, locations=None):
    """A small classification dataset (the zoo's first digits, all in the test split), plus `extra` members;
    `locations` replaces the location of the first images."""
    names = [f"images/digit_{i:04d}.png" for i in range(count)]
    files = {name: (zoo_dir / "digits" / name).read_bytes() for name in names}
    for i, location in enumerate(locations or []):
        names[i] = location
    entries = "".join(f"  - location: {name!r}\n    label: {i}\n" for i, name in enumerate(names))
    yaml = f"classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']\nimages:\n{entries}"
    return zip_of({"d.yml": yaml.encode(), **files, **(extra or {})})


def traversal(secret) -> str:
    """The reported exploit: a URL-looking location whose path climbs out of the dataset folder (`http:` is a
    folder of the archive, so the operating system walks `http:/../..` like any other path)."""
    return "http://" + "../" * 40 + str(secret).lstrip("/")


def storage_of(backend):
    return backend.settings.storage_dir


def app_db(backend):
    return backend.app.app.state.db  # the TestClient's app is the SessionHost around FastAPI


def _no_dataset_left(backend, headers):
    folder = storage_of(backend) / "datasets"
    assert not folder.exists() or list(folder.iterdir()) == []
    assert backend.get("/backend/datasets", headers=headers).json() == []


@pytest.mark.parametrize(
    "location",
    [
        "traversal",
        "http:/../../outside/secret.png",
        "https://example.org/digit.png",
        "../x.png",
        "/etc/passwd",
        "~/x.png",
        "C:/x.png",
    ],
)
def test_upload_refuses_locations_that_are_not_files_of_the_archive(backend, zoo_dir, secret, location):
    headers = register(backend, "owner")
    location = traversal(secret) if location == "traversal" else location
    archive = digits_zip_of(zoo_dir, locations=[location], extra={"http:/placeholder.png": _secret_png()})
    response = upload(backend, headers, archive)
    assert response.status_code == 400, response.text
    body = response.json()
    assert "images[0]" in body["error"] + " ".join(body.get("detail", {}).get("problems", [])), body
    _no_dataset_left(backend, headers)


def _upload_digits(backend, headers, zoo_dir, **fields):
    created = upload(backend, headers, digits_zip_of(zoo_dir), **fields)
    assert created.status_code == 201, created.text
    return created.json()


def _thumbnail(backend, headers, dataset_id, image_id=0):
    return backend.get(f"/backend/datasets/{dataset_id}/images/{image_id}/thumbnail", headers=headers)


def test_a_row_tampered_after_upload_is_not_followed_outside_storage(backend, zoo_dir, secret):
    headers = register(backend, "owner")
    dataset = _upload_digits(backend, headers, zoo_dir)
    assert _thumbnail(backend, headers, dataset["id"]).status_code == 200
    (secret.parent / "d.yml").write_text("classes: ['0', '1']\nimages:\n  - location: secret.png\n    label: 0\n")
    storage = storage_of(backend)
    outside = "/".join([".."] * len(storage.resolve().parts) + [str(secret.parent / "d.yml").lstrip("/")])
    with app_db(backend).transaction() as db:
        db.get(Dataset, dataset["id"]).path = f"datasets/{outside}"
    refused = _thumbnail(backend, headers, dataset["id"])
    assert refused.status_code in (400, 404), refused.text
    assert refused.headers["content-type"] == "application/json"


def _link_first_image_to(backend, dataset, target):
    image = storage_of(backend) / dataset["path"]
    image = image.parent / "images" / "digit_0000.png"
    image.unlink()
    image.symlink_to(target)


@pytest.mark.parametrize("target", ["secret", "/dev/zero"])
def test_a_link_inside_the_dataset_folder_is_not_followed(backend, zoo_dir, secret, target):
    headers = register(backend, "owner")
    dataset = _upload_digits(backend, headers, zoo_dir)
    _link_first_image_to(backend, dataset, secret if target == "secret" else target)
    refused = _thumbnail(backend, headers, dataset["id"])
    assert refused.status_code == 400 and "images[0]" in refused.json()["error"], refused.text
    assert _thumbnail(backend, headers, dataset["id"], 1).status_code == 200  # the other images still show
    with app_db(backend).transaction() as db:
        owner_id = db.scalar(select(User.id).where(User.username == "owner"))
    media = SessionMedia(app_db(backend), storage_of(backend), owner_id, dataset["id"])
    with pytest.raises(InputError, match=r"images\[0\]"):
        media.image(0)
    assert media.image(1)[1] == "digit_0001.png"


def lenet(backend, zoo_dir, headers):
    """The caller's own copy of the Digits LeNet weights; returns their id."""
    model_id = backend.post("/backend/models", json={"name": "LeNet", "task_id": 1}, headers=headers).json()["id"]
    created = backend.post(
        "/backend/weights",
        data={"name": "digits", "model_id": str(model_id)},
        files={"onnx_data": ("m.onnx", (zoo_dir / "digits-lenet.onnx").read_bytes())},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    return created.json()["weight_id"]


def test_an_inference_job_fails_an_image_that_leaves_the_dataset(backend, zoo_dir, secret):
    headers = register(backend, "owner")
    dataset = _upload_digits(backend, headers, zoo_dir)
    _link_first_image_to(backend, dataset, secret)
    project = backend.post("/backend/projects", json={"name": "p", "task_id": 1}, headers=headers).json()["id"]
    body = {"project_id": project, "modelweights_id": lenet(backend, zoo_dir, headers), "dataset_id": dataset["id"]}
    launched = backend.post("/backend/inference", json=body, headers=headers)
    assert launched.status_code == 201, launched.text
    status = wait(backend, headers, launched.json()["process_id"])
    assert status["status"]["process_status"] == "failed"
    reason = status["status"]["process_data"]
    assert reason.startswith("Error - ") and "images[0]" in reason and "leaves the dataset folder" in reason


def test_project_viewers_see_a_process_image_only_if_they_may_see_its_dataset(backend, zoo_dir):
    owner = register(backend, "owner")
    viewer = register(backend, "viewer")
    dataset = _upload_digits(backend, owner, zoo_dir)  # private to its owner
    users = [{"username": "owner", "permission": "OWN"}, {"username": "viewer", "permission": "VIEW"}]
    project = backend.post("/backend/projects", json={"name": "p", "task_id": 1, "users": users}, headers=owner)
    body = {
        "project_id": project.json()["id"],
        "modelweights_id": lenet(backend, zoo_dir, owner),
        "dataset_id": dataset["id"],
    }
    process_id = backend.post("/backend/inference", json=body, headers=owner).json()["process_id"]
    thumbnail = f"/backend/processes/{process_id}/images/0/thumbnail"
    assert backend.get(f"/backend/status?process_id={process_id}", headers=viewer).status_code == 200
    assert backend.get(thumbnail, headers=viewer).status_code in (403, 404)
    assert backend.get(thumbnail, headers=owner).status_code == 200
    assert wait(backend, owner, process_id)["status"]["process_status"] == "finished"
    assert backend.get(thumbnail, headers=viewer).status_code in (403, 404)  # a finished process changes nothing


def test_the_reported_traversal_is_refused_by_a_real_server(zoo_dir, tmp_path, secret):
    archive = digits_zip_of(zoo_dir, locations=[traversal(secret)], extra={"http:/placeholder.png": _secret_png()})
    home = fresh_home(zoo_dir, tmp_path / "home")
    with fovea_serve(home, ADMIN_PASSWORD) as url, httpx.Client(base_url=url, timeout=30) as client:
        headers = bearer(login(client))
        form = {"name": "evil", "task_id": "1"}
        response = client.post(
            "/backend/datasets", data=form, files={"dataset_data": ("d.zip", archive)}, headers=headers
        )
        assert response.status_code == 400, response.text
        assert "images[0]" in " ".join(response.json()["detail"]["problems"])
        assert "evil" not in [d["name"] for d in client.get("/backend/datasets", headers=headers).json()]


def test_a_training_whose_dataset_row_leaves_storage_fails_with_a_reason(backend, zoo_dir, secret, monkeypatch):
    """The training job reads the YAML through `datasets.yaml_path`, so a row tampered between the launch and the
    job does not make it train on (and so read) a file outside storage."""
    from fovea.jobs.training import run_training

    headers = bearer(login(backend))
    dataset = _upload_digits(backend, headers, zoo_dir, ctype="GRAY")  # as the LeNet expects
    start = lenet(backend, zoo_dir, headers)
    queued = []
    monkeypatch.setattr(backend.app.app.state.executor, "submit_process", lambda *args: queued.append(args))
    project = backend.post("/backend/projects", json={"name": "p", "task_id": 1}, headers=headers).json()["id"]
    body = {
        "project_id": project,
        "dataset_id": dataset["id"],
        "weights_id": start,
        "properties": props(height=8, width=8, epochs=1),
    }
    launched = backend.post("/backend/train", json=body, headers=headers)
    assert launched.status_code == 201, launched.text
    (secret.parent / "d.yml").write_text("classes: ['0', '1']\nimages:\n  - location: secret.png\n    label: 0\n")
    storage = storage_of(backend)
    outside = "/".join([".."] * len(storage.resolve().parts) + [str(secret.parent / "d.yml").lstrip("/")])
    with app_db(backend).transaction() as db:
        db.get(Dataset, dataset["id"]).path = f"datasets/{outside}"
    [(process_type, process_id, db_url, _)] = queued
    assert process_type == "training"
    run_training(process_id, db_url, str(storage))
    status = wait(backend, headers, process_id, timeout=5)
    assert status["status"]["process_status"] == "failed", status
    assert status["status"]["process_data"] == f"Error - NotFound: the files of dataset {dataset['id']} are missing"
