"""`POST /backend/explain` on a real `fovea serve`: Grad-CAM of private classification weights, for their owner only.

The owner uploads the zoo's EfficientNet-Lite0 as private weights and gets the heat-map overlay PNG of a cat
placed in one corner of a white page; the heat lies on the cat (the idea of tests/training/test_explain.py,
checked on the PNG the console shows). Strangers and anonymous callers get what `inferenceSingle` gives them, a
segmenter is refused with a reason, a server without PyTorch answers 501 saying what to install, and a busy one
503 with Retry-After.
"""

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.platform.conftest import bearer, register
from tests.platform.server import fovea_serve, fresh_home
from tests.training.test_explain import _cat_in_a_corner

pytestmark = pytest.mark.slow

PASSWORD = "explain-admin-5"
CLASSIFIER = "efficientnet-lite0-imagenet.onnx"


@pytest.fixture(scope="module")
def world(zoo_dir, tmp_path_factory):
    """A server, its owner's private classifier weights and project, and the callers' headers."""
    home = fresh_home(zoo_dir, tmp_path_factory.mktemp("home"))
    with fovea_serve(home, PASSWORD) as url, httpx.Client(base_url=url, timeout=180) as client:
        owner, stranger = register(client, "owner"), register(client, "stranger")
        model = client.post("/backend/models", json={"name": "Lite0", "task_id": 1}, headers=owner).json()["id"]
        uploaded = client.post(
            "/backend/weights",
            data={"name": "private-lite0", "model_id": str(model), "public": "false"},
            files={"onnx_data": ("m.onnx", (zoo_dir / CLASSIFIER).read_bytes())},
            headers=owner,
        )
        assert uploaded.status_code == 201, uploaded.text
        ids = {"weights": uploaded.json()["weight_id"]}
        for name, headers in (("owner", owner), ("stranger", stranger)):
            ids[name] = client.post("/backend/projects", json={"name": "p", "task_id": 1}, headers=headers).json()["id"]
        yield client, {"owner": owner, "stranger": stranger, "anonymous": {}}, ids


def data_url(pixels: np.ndarray, kind: str = "png") -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, kind.upper(), quality=95)
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode()


def demo_weights_id(client: httpx.Client, headers: dict[str, str], name: str) -> int:
    """The id of the demo catalog's weights called `name`."""
    for model in client.get("/backend/models", headers=headers).json():
        for weights in client.get("/backend/weights", params={"model_id": model["id"]}, headers=headers).json():
            if weights["name"] == name:
                return weights["id"]
    raise AssertionError(f"no weights {name} in the demo catalog")


def admin_explains_the_demo_classifier(client) -> tuple[dict[str, str], dict]:
    """The admin's headers, and an `explain` body for the demo EfficientNet on a black image in a new project."""
    form = {"grant_type": "password", "username": "admin", "password": PASSWORD, "client_id": "fovea"}
    admin = bearer(client.post("/backend/auth/token", data=form).json())
    project = client.post("/backend/projects", json={"name": "p", "task_id": 1}, headers=admin).json()["id"]
    body = {
        "project_id": project,
        "modelweights_id": demo_weights_id(client, admin, "EfficientNet-Lite0_ImageNet"),
        "image_data": data_url(np.zeros((8, 8, 3), np.uint8)),
    }
    return admin, body


def redness(overlay: np.ndarray, rows: slice, columns: slice) -> float:
    """How much warmer than blue a region is drawn: JET paints strong evidence red/yellow, none blue."""
    region = overlay[rows, columns].astype(int)
    return float((region[..., 0] - region[..., 2]).mean())


# A 512x512 JPEG is decoded at half scale for the 224x224 network; the overlay is still the photo's own size.
@pytest.mark.parametrize(("corner", "kind"), [((1, 0), "png"), ((0, 1), "jpeg")])
def test_the_owner_gets_an_overlay_hot_on_the_cat(zoo_dir, world, corner, kind):
    client, callers, ids = world
    body = {
        "project_id": ids["owner"],
        "modelweights_id": ids["weights"],
        "image_data": data_url(_cat_in_a_corner(zoo_dir, corner), kind),
    }
    answer = client.post("/backend/explain", json=body, headers=callers["owner"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    overlay = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"))
    assert overlay.shape == (512, 512, 3)
    cat = (slice(300, 480), slice(40, 240)) if corner == (1, 0) else (slice(40, 240), slice(300, 480))
    across = (cat[1], cat[0])  # the opposite quadrant: white page only
    assert redness(overlay, *cat) > redness(overlay, *across) + 40


def test_strangers_and_anonymous_callers_get_nothing(zoo_dir, world):
    client, callers, ids = world
    image = data_url(_cat_in_a_corner(zoo_dir, (0, 0)))
    for caller, project, status in (
        ("stranger", ids["stranger"], 404),  # their own project, the owner's private weights
        ("stranger", ids["owner"], 404),  # the owner's project
        ("anonymous", ids["owner"], 401),
    ):
        body = {"project_id": project, "modelweights_id": ids["weights"], "image_data": image}
        answer = client.post("/backend/explain", json=body, headers=callers[caller])
        assert answer.status_code == status, (caller, answer.text)
        assert answer.headers["content-type"] == "application/json" and answer.json()["error"]


def test_bad_requests_get_a_reason(world):
    client, callers, ids = world
    body = {"project_id": ids["owner"], "modelweights_id": ids["weights"]}
    blank = data_url(np.zeros((8, 8, 3), np.uint8))
    for extra, reason in (
        ({}, "exactly one of `image_url` and `image_data`"),
        ({"image_data": "data:image/png;base64,!!!"}, "not valid base64"),
        ({"image_data": blank, "class_index": 5000}, "out of range"),
        ({"image_data": blank, "class_index": "cat"}, "class_index must be"),
    ):
        answer = client.post("/backend/explain", json={**body, **extra}, headers=callers["owner"])
        assert answer.status_code == 400 and reason in answer.json()["error"], answer.text


def test_a_segmenter_is_refused(world):
    client, callers, _ = world
    owner = callers["owner"]
    project = client.post("/backend/projects", json={"name": "s", "task_id": 2}, headers=owner).json()["id"]
    body = {
        "project_id": project,
        "modelweights_id": demo_weights_id(client, owner, "DBNet_PP-OCRv6-Text"),
        "image_data": data_url(np.full((64, 64, 3), 255, np.uint8)),
    }
    answer = client.post("/backend/explain", json=body, headers=owner)
    assert answer.status_code == 400 and "explains classification models" in answer.json()["error"], answer.text


def test_without_pytorch_the_server_says_what_to_install(zoo_dir, tmp_path):
    """A server whose `import torch` fails, as on a serving-only install (a package that raises ImportError)."""
    blocker = tmp_path / "blocked" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked for this test')\n")
    home = fresh_home(zoo_dir, tmp_path / "home")
    blocked = {"PYTHONPATH": str(blocker.parent)}
    with fovea_serve(home, PASSWORD, **blocked) as url, httpx.Client(base_url=url, timeout=120) as client:
        admin, body = admin_explains_the_demo_classifier(client)
        answer = client.post("/backend/explain", json=body, headers=admin)
    assert answer.status_code == 501, answer.text
    assert "pip install 'fovea[train]'" in answer.json()["error"]


def test_a_busy_server_answers_503_with_retry_after(zoo_dir, tmp_path, monkeypatch):
    """One Grad-CAM runs at a time; a request that cannot start within QUEUE_WAIT_S is told when to come back
    instead of holding a worker thread. In process, so the test can hold the one slot itself."""
    from fastapi.testclient import TestClient

    from fovea.platform.bootstrap import bootstrap, seed_demo
    from fovea.platform.config import PlatformSettings
    from fovea.server.backend import explain_routes
    from fovea.server.backend.app import create_backend_app

    settings = PlatformSettings(home=tmp_path / "home", admin_password=PASSWORD)
    db, _ = bootstrap(settings)
    seed_demo(settings, db, zoo_dir)
    monkeypatch.setattr(explain_routes, "QUEUE_WAIT_S", 0.05)
    with TestClient(create_backend_app(settings, db)) as client:
        admin, body = admin_explains_the_demo_classifier(client)
        with explain_routes._ONE_AT_A_TIME:  # another explanation is running
            answer = client.post("/backend/explain", json=body, headers=admin)
    db.dispose()
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    assert answer.json() == {"error": "the server is busy explaining other images; try again"}
