"""allowedProperties: staff-only writes, one row per (property, model, dataset), typed values."""

from tests.platform.conftest import bearer, login, register


def test_allowed_properties(backend):
    staff = bearer(login(backend))
    user = register(backend, "someone")
    model = backend.post("/backend/models", json={"name": "ResNet50", "task_id": 1}, headers=staff).json()["id"]
    row = {"property_id": 7, "model_id": model, "default_value": "224", "allowed_value": ">=32,<=1024"}
    assert backend.post("/backend/allowedProperties", json=row, headers=user).status_code == 403
    created = backend.post("/backend/allowedProperties", json=row, headers=staff)
    assert created.status_code == 201, created.text
    item = created.json()
    assert item == {**row, "id": item["id"], "dataset_id": None}
    assert backend.post("/backend/allowedProperties", json=row, headers=staff).status_code == 400  # duplicate
    for bad in (
        {"default_value": "abc"},
        {"default_value": "2048"},  # outside the allowed range
        {"allowed_value": "big"},
        {"allowed_value": 5},  # not a string: a 400 with its message, never a 500
        {"allowed_value": [">0"]},
        {"property_id": 99},
    ):
        response = backend.post("/backend/allowedProperties", json={**row, "property_id": 6, **bad}, headers=staff)
        assert response.status_code == 400, (bad, response.text)
    loss = {
        "property_id": 2,
        "model_id": model,
        "default_value": "CROSS_entropy",
        "allowed_value": "[cross_entropy,dice]",
    }
    created_loss = backend.post("/backend/allowedProperties", json=loss, headers=staff).json()
    assert created_loss["default_value"] == "cross_entropy" and created_loss["allowed_value"] == "cross_entropy,dice"
    listed = backend.get(f"/backend/allowedProperties?model_id={model}", headers=user).json()
    assert [r["property_id"] for r in listed] == [7, 2]
    assert [
        r["id"] for r in backend.get(f"/backend/allowedProperties?model_id={model}&property_id=2", headers=user).json()
    ] == [created_loss["id"]]
    assert backend.get("/backend/allowedProperties", headers=user).status_code == 400
    updated = backend.patch(f"/backend/allowedProperties/{item['id']}", json={"default_value": "512"}, headers=staff)
    assert updated.status_code == 200 and updated.json()["default_value"] == "512"
    assert (
        backend.patch(
            f"/backend/allowedProperties/{item['id']}", json={"default_value": "1"}, headers=staff
        ).status_code
        == 400
    )
