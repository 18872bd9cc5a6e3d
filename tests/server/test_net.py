"""`/net/<token>/`: what the database says about a token is remembered briefly, and forgotten on any write."""

import pytest

from tests.platform.conftest import backend, register  # noqa: F401 (the back-end fixture, on SQLite and PostgreSQL)


@pytest.fixture
def public_weights(backend, zoo_dir):  # noqa: F811
    owner = register(backend, "owner")
    model_id = backend.post("/backend/models", json={"name": "LeNet", "task_id": 1}, headers=owner).json()["id"]
    weights = backend.post(
        "/backend/weights",
        data={"name": "digits", "model_id": str(model_id), "public": "true"},
        files={"onnx_data": ("m.onnx", (zoo_dir / "digits-lenet.onnx").read_bytes())},
        headers=owner,
    )
    assert weights.status_code == 201, weights.text
    return owner, weights.json()["weight_id"]


def test_a_token_is_looked_up_once_for_many_requests(backend, public_weights, monkeypatch):  # noqa: F811
    owner, weights = public_weights
    token = backend.post("/backend/sessions", json={"modelweights_id": weights}, headers=owner).json()["token"]
    host = backend.app
    lookups = []
    lookup = host._lookup
    monkeypatch.setattr(host, "_lookup", lambda token: lookups.append(token) or lookup(token))
    monkeypatch.setattr("fovea.server.net.LOOKUP_TTL_S", 3600.0)  # however slow the machine, within the TTL
    for _ in range(5):
        assert backend.post(f"/net/{token}/get_session_info", json={}).status_code == 200
    assert lookups == [token]


def test_a_write_through_the_api_is_seen_by_the_next_request(backend, public_weights, monkeypatch):  # noqa: F811
    owner, weights = public_weights
    stranger = register(backend, "stranger")
    token = backend.post("/backend/sessions", json={"modelweights_id": weights}, headers=stranger).json()["token"]
    monkeypatch.setattr("fovea.server.net.LOOKUP_TTL_S", 3600.0)
    assert backend.post(f"/net/{token}/get_session_info", json={}).status_code == 200  # remembered from here on
    made_private = backend.patch(f"/backend/weights/{weights}", json={"public": False}, headers=owner)
    assert made_private.status_code == 200, made_private.text
    # The stranger's session used the public weights; they are private now, and the session is gone with them.
    assert backend.post(f"/net/{token}/get_session_info", json={}).status_code == 404
