"""Deploying weights as sessions at /net/{token}/ and reaching them in the session dialects."""

import pytest

from fovea.platform.models import DeployedSession
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


def test_ids_name_the_session_datasets_images_and_the_owners_videos(backend, deployed, digits_zip, tmp_path):
    from tests.media import write_video
    from tests.platform.test_datasets import upload

    owner, weights = deployed
    dataset_id = upload(backend, owner, digits_zip).json()["id"]
    session = backend.post(
        "/backend/sessions", json={"modelweights_id": weights, "dataset_id": dataset_id}, headers=owner
    ).json()
    assert session["dataset_id"] == dataset_id
    url = f"/net/{session['token']}"

    def call(endpoint, **state):
        return backend.post(f"{url}/{endpoint}", json={"state": state, "context": {}, "api_token": None})

    seven = call("inference_image_id", image_id=7)  # digit_0007.png, a 7 (the ids `datasets/{id}/images` lists)
    assert seven.status_code == 200 and seven.json()["annotation"]["tags"][0]["name"] == "7"
    labels = [backend.get(f"/backend/datasets/{dataset_id}/images?offset={i}&limit=1", headers=owner).json()[0]["label"]
              for i in (3, 0, 12)]  # fmt: skip
    batch = call("inference_batch_ids", batch_ids=[3, 0, 12]).json()
    assert [int(r["annotation"]["tags"][0]["name"]) for r in batch] == [label[0] for label in labels]
    assert call("inference_image_id", image_id=99999).status_code == 404

    video = write_video(tmp_path / "clip.mkv", 5)
    uploaded = backend.post("/backend/videos", files={"video_data": ("clip.mkv", video.read_bytes())}, headers=owner)
    assert uploaded.status_code == 201, uploaded.text
    video_id = uploaded.json()["id"]
    frames = call("inference_video_id", videoId=video_id)
    assert frames.status_code == 200 and len(frames.json()["ann"]) == 5
    other = register(backend, "someone")
    assert backend.get("/backend/videos", headers=other).json() == []
    theirs = backend.post("/backend/sessions", json={"modelweights_id": weights}, headers=owner).json()
    assert (
        backend.post(f"/net/{theirs['token']}/inference_image_id", json={"state": {"image_id": 7}}).status_code == 404
    )  # a session without a dataset resolves no image ids
    refused = backend.post("/backend/videos", files={"video_data": ("notes.mkv", b"not a video")}, headers=owner)
    assert refused.status_code == 400
    assert backend.delete(f"/backend/videos/{video_id}", headers=other).status_code == 404
    assert backend.delete(f"/backend/videos/{video_id}", headers=owner).status_code == 204
    assert call("inference_video_id", videoId=video_id).status_code == 404


def test_a_deleted_sessions_model_unloads_only_once_its_row_is_gone(backend, deployed):
    owner, weights = deployed
    item = backend.post("/backend/sessions", json={"modelweights_id": weights}, headers=owner).json()
    state = backend.app.app.state  # backend.app is the SessionHost around the platform app
    sessions = state.sessions
    seen = []
    forget = sessions.forget

    def checking(record_id):
        # What another request would find at this moment: the row must be gone, or it could load the session again.
        with state.db.transaction() as db:
            seen.append(db.get(DeployedSession, record_id))
        forget(record_id)

    sessions.forget = checking
    try:
        assert backend.delete(f"/backend/sessions/{item['id']}", headers=owner).status_code == 204
    finally:
        sessions.forget = forget
    assert seen == [None]
