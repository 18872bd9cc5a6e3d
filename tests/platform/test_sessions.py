"""Deploying weights as sessions at /net/{token}/ and reaching them in the session dialects."""

import pytest

from tests.platform.conftest import bearer, login, register


@pytest.fixture
def deployed(backend, zoo_dir):
    owner = register(backend, "owner")
    model_id = backend.post("/backend/models", json={"name": "LeNet", "task_id": 1}, headers=owner).json()["id"]
    onnx = (zoo_dir / "digits-lenet.onnx").read_bytes()
    weights = backend.post(
        "/backend/weights",
        data={"name": "digits", "model_id": str(model_id)},
        files={"onnx_data": ("m.onnx", onnx)},
        headers=owner,
    ).json()["weight_id"]
    return owner, weights


def test_deploy_predict_patch_and_delete(backend, deployed, zoo_dir):
    owner, weights = deployed
    bad = backend.post("/backend/sessions", json={"modelweights_id": weights, "settings": {"conf": 0.5}}, headers=owner)
    assert bad.status_code == 400 and "acceptable keys: top_k" in bad.json()["error"]
    created = backend.post(
        "/backend/sessions", json={"modelweights_id": weights, "settings": {"top_k": 2}}, headers=owner
    )
    assert created.status_code == 201, created.text
    item = created.json()
    token = item["token"]
    assert (
        len(token) >= 22
        and item["session_url"] == f"http://testserver/net/{token}"
        and item["settings"] == {"top_k": 2}
    )
    png = (zoo_dir / "digits" / "images" / "digit_0000.png").read_bytes()
    result = backend.post(f"/net/{token}/inference_image", files={"files": ("zero.png", png)})
    assert result.status_code == 200, result.text
    assert result.json()["annotation"]["tags"][0]["name"] == "0"
    assert backend.post(f"/net/{token}/get_custom_inference_settings", json={}).json() == {"settings": {"top_k": 2}}
    assert backend.get(f"/net/{token}/v2/models/digits/ready").status_code == 200
    assert backend.get(f"/backend/sessions/{item['id']}", headers=owner).json()["state"] == "ready"
    patched = backend.patch(f"/backend/sessions/{item['id']}", json={"settings": {"top_k": 1}}, headers=owner)
    assert patched.json()["settings"] == {"top_k": 1}
    assert backend.post(f"/net/{token}/get_custom_inference_settings", json={}).json() == {"settings": {"top_k": 1}}
    assert backend.post(f"/net/{token}/v2/repository/models/digits/unload").status_code == 403
    assert backend.post(f"/net/{token}/v2/repository/models/digits/unload", headers=owner).status_code == 200
    assert backend.delete(f"/backend/sessions/{item['id']}", headers=owner).status_code == 204
    assert backend.post(f"/net/{token}/get_session_info", json={}).status_code == 404
    assert backend.get("/net/not-a-token/v2").status_code == 404


def test_sessions_belong_to_their_owner(backend, deployed):
    owner, weights = deployed
    other = register(backend, "other")
    item = backend.post("/backend/sessions", json={"modelweights_id": weights}, headers=owner).json()
    assert backend.get(f"/backend/sessions/{item['id']}", headers=other).status_code == 404
    assert backend.get("/backend/sessions", headers=other).json() == []
    assert [s["id"] for s in backend.get("/backend/sessions", headers=owner).json()] == [item["id"]]
    assert backend.post("/backend/sessions", json={"modelweights_id": weights}, headers=other).status_code == 404
    assert backend.post("/backend/sessions", json={}, headers=bearer(login(backend))).status_code == 400
