"""Weights upload (with ONNX validation), listing, sharing, download and deletion; properties."""

import json

import numpy as np
import pytest

from fovea.core.card import ModelCard
from tests.core.graphs import constant_outputs
from tests.platform.conftest import bearer, login, register


@pytest.fixture(scope="module")
def onnx_bytes(tmp_path_factory):
    card = ModelCard(
        task="classification", classes=["cat", "dog", "bird"], input={"size": (16, 16)}, decoder={"kind": "softmax"}
    )
    path = constant_outputs(
        tmp_path_factory.mktemp("w") / "m.onnx", card, {"logits": np.array([[0.0, 1.0, 2.0]], np.float32)}
    )
    return path.read_bytes()


def make_model(client, headers, task_id=1, name="TinyNet"):
    return client.post("/backend/models", json={"name": name, "task_id": task_id}, headers=headers).json()["id"]


def upload(client, headers, data, **fields):
    form = {k: (json.dumps(v) if k == "users" else str(v)) for k, v in fields.items()}
    return client.post("/backend/weights", data=form, files={"onnx_data": ("m.onnx", data)}, headers=headers)


def stored_files(client):
    folder = client.settings.storage_dir / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_upload_list_download_and_delete(backend, onnx_bytes):
    owner = register(backend, "owner")
    model_id = make_model(backend, owner)
    created = upload(backend, owner, onnx_bytes, name="tiny", model_id=model_id)
    assert created.status_code == 201, created.text
    weights_id = created.json()["weight_id"]
    assert created.json() == {"result": "ok", "weight_id": weights_id}
    item = backend.get(f"/backend/weights/{weights_id}", headers=owner).json()
    assert item["classes"] == "cat,dog,bird" and item["is_active"] is True and item["public"] is False
    assert item["users"] == [{"username": "owner", "permission": "OWN"}]
    assert [w["id"] for w in backend.get(f"/backend/weights?model_id={model_id}", headers=owner).json()] == [weights_id]
    missing = backend.get("/backend/weights", headers=owner)
    assert missing.status_code == 400 and missing.json()["error"] == "Missing required parameter `model_id`"
    download = backend.get(f"/backend/weightsDownload?modelweights_id={weights_id}", headers=owner)
    assert download.content == onnx_bytes and 'filename="tiny.onnx"' in download.headers["content-disposition"]
    assert backend.delete(f"/backend/weights/{weights_id}", headers=owner).status_code == 204
    assert backend.get(f"/backend/weights/{weights_id}", headers=owner).status_code == 404
    assert stored_files(backend) == []


@pytest.mark.parametrize(
    ("task_id", "fields", "data", "message"),
    [
        (1, {}, b"not onnx at all", "ONNX file is malformed"),
        (1, {"layer_to_remove": "Gemm_999"}, None, "layer_to_remove"),
        (2, {}, None, "model card is for classification"),
        (1, {"classes": "a,b"}, None, "classes differ"),
    ],
)
def test_invalid_uploads_store_nothing(backend, onnx_bytes, task_id, fields, data, message):
    owner = bearer(login(backend))
    model_id = make_model(backend, owner, task_id=task_id)
    response = upload(backend, owner, data or onnx_bytes, name="bad", model_id=model_id, **fields)
    assert response.status_code == 400 and message in response.json()["error"], response.text
    assert response.json()["error"].startswith("ONNX file is malformed")
    assert backend.get(f"/backend/weights?model_id={model_id}&include_inactive=true", headers=owner).json() == []
    assert stored_files(backend) == []


def test_onnx_data_and_url_rules(backend, onnx_bytes):
    owner = bearer(login(backend))
    model_id = make_model(backend, owner)
    neither = backend.post(
        "/backend/weights", data={"name": "x", "model_id": str(model_id)}, files={"other": ("a", b"1")}, headers=owner
    )
    assert neither.json()["error"] == "At least one between `onnx_url` and `onnx_data` fields is needed."
    both = upload(backend, owner, onnx_bytes, name="x", model_id=model_id, onnx_url="http://example.org/m.onnx")
    assert both.json()["error"] == "Send only one of `onnx_url` and `onnx_data`."
    assert upload(backend, owner, onnx_bytes, name="x", model_id=999).status_code == 400


def test_sharing_public_and_permissions(backend, onnx_bytes):
    owner = register(backend, "owner")
    viewer = register(backend, "viewer")
    stranger = register(backend, "stranger")
    model_id = make_model(backend, owner)
    users = [{"username": "owner", "permission": "OWN"}, {"username": "viewer", "permission": "VIEW"}]
    weights_id = upload(backend, owner, onnx_bytes, name="shared", model_id=model_id, users=users).json()["weight_id"]
    assert backend.get(f"/backend/weights/{weights_id}", headers=viewer).status_code == 200
    assert backend.patch(f"/backend/weights/{weights_id}", json={"name": "n"}, headers=viewer).status_code == 403
    assert backend.get(f"/backend/weights/{weights_id}", headers=stranger).status_code == 404
    assert backend.get(f"/backend/weightsDownload?modelweights_id={weights_id}", headers=stranger).status_code == 404
    assert backend.delete(f"/backend/weights/{weights_id}", headers=stranger).status_code == 404
    made_public = backend.patch(f"/backend/weights/{weights_id}", json={"public": True}, headers=owner)
    assert made_public.status_code == 200 and made_public.json()["public"] is True
    assert backend.get(f"/backend/weights/{weights_id}", headers=stranger).status_code == 200
    assert backend.patch(f"/backend/weights/{weights_id}", json={"model_id": 12345}, headers=owner).status_code == 400
    bad_layer = backend.patch(f"/backend/weights/{weights_id}", json={"layer_to_remove": "nope"}, headers=owner)
    assert bad_layer.status_code == 400 and "layer_to_remove" in bad_layer.json()["error"]


def test_updates_tell_a_field_sent_as_null_from_one_left_out(backend, onnx_bytes):
    owner = bearer(login(backend))
    model_id = make_model(backend, owner)
    weights_id = upload(backend, owner, onnx_bytes, name="w", model_id=model_id).json()["weight_id"]
    url = f"/backend/weights/{weights_id}"
    for method, body, status, error in [
        ("put", {"name": "n"}, 400, "missing fields: public"),
        ("patch", {"users": None}, 400, "users is required"),
        ("patch", {"name": None}, 400, "name must be 1-200 characters"),
        ("patch", {"pretrained_on": 5}, 400, "pretrained_on is read-only"),
        ("patch", {"model_id": model_id, "pretrained_on": None}, 200, None),  # read-only fields equal to the stored
        ("patch", {}, 200, None),
    ]:
        response = getattr(backend, method)(url, json=body, headers=owner)
        assert response.status_code == status and response.json().get("error") == error, (body, response.text)
    item = backend.get(url, headers=owner).json()
    assert item["name"] == "w" and item["classes"] == "cat,dog,bird" and len(item["users"]) == 1


def test_properties(backend):
    headers = bearer(login(backend))
    rows = backend.get("/backend/properties", headers=headers).json()
    assert [r["id"] for r in rows] == list(range(1, 11))
    assert rows[1] == {
        "id": 2,
        "name": "Loss function",
        "type": "list",
        "default": "cross_entropy",
        "values": "cross_entropy,softmax_cross_entropy,mean_squared_error,binary_cross_entropy,dice",
    }
    assert [r["id"] for r in backend.get("/backend/properties?name=input_WIDTH", headers=headers).json()] == [7]
    assert backend.get("/backend/properties/7", headers=headers).json()["name"] == "Input width"
    assert backend.get("/backend/properties/99", headers=headers).status_code == 404


def test_register_by_url_downloads_validates_and_activates(backend, onnx_bytes):
    import http.server
    import threading
    import time

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = onnx_bytes if self.path == "/m.onnx" else b"not onnx"
            self.send_response(200 if self.path != "/missing" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    headers = bearer(login(backend))
    model_id = make_model(backend, headers)

    def register_url(path):
        response = backend.post(
            "/backend/weights", json={"name": "remote", "model_id": model_id, "onnx_url": base + path}, headers=headers
        )
        assert response.status_code == 201, response.text
        return response.json()

    def final_status(process_id):
        for _ in range(300):
            status = backend.get(f"/backend/weightsStatus?process_id={process_id}", headers=headers).json()
            if status["result"] in ("finished", "failed"):
                return status
            time.sleep(0.1)
        raise AssertionError("download did not end")

    try:
        refused = register_url("/m.onnx")  # loopback is not allowlisted by default
        assert final_status(refused["process_id"])["error"].startswith(
            "download failed: URL host 127.0.0.1 is a loopback"
        )
        assert backend.get(f"/backend/weights/{refused['weight_id']}", headers=headers).status_code == 404
        backend.settings.allow_url_hosts = ["127.0.0.1"]
        good = register_url("/m.onnx")
        assert backend.get(f"/backend/weights/{good['weight_id']}", headers=headers).json()["is_active"] in (
            False,
            True,
        )
        assert final_status(good["process_id"]) == {"process_type": "Model Weight downloading", "result": "finished"}
        item = backend.get(f"/backend/weights/{good['weight_id']}", headers=headers).json()
        assert (
            item["is_active"] is True and item["classes"] == "cat,dog,bird" and item["process_id"] == good["process_id"]
        )
        bad = register_url("/garbage.onnx")
        assert final_status(bad["process_id"])["error"].startswith("ONNX file is malformed")
        missing = register_url("/missing")
        assert "HTTP 404" in final_status(missing["process_id"])["error"]
        assert (
            backend.get(
                f"/backend/weightsStatus?process_id={good['process_id']}", headers=register(backend, "x")
            ).status_code
            == 404
        )
    finally:
        backend.settings.allow_url_hosts = []
        server.shutdown()
