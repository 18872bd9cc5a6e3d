"""A request that fails rolls back every write it made before failing (DESIGN §7: nothing half-written)."""

import io

import numpy as np
import pytest
from PIL import Image

from fovea.core.card import ModelCard
from tests.core.graphs import constant_outputs
from tests.platform.conftest import register, zip_of


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def weights_and_dataset(backend, tmp_path):
    """(headers, weights id, dataset id): the owner's classification weights, not linked to their dataset yet."""
    owner = register(backend, "owner")
    archive = zip_of({"d.yml": b"classes: [a, b]\nimages:\n  - location: a.png\n    label: 0\n", "a.png": png()})
    dataset = backend.post(
        "/backend/datasets", data={"name": "tiny", "task_id": "1"}, files={"dataset_data": ("d.zip", archive)},
        headers=owner,
    )  # fmt: skip
    assert dataset.status_code == 201, dataset.text
    card = ModelCard(task="classification", classes=["a", "b"], input={"size": (8, 8)}, decoder={"kind": "softmax"})
    onnx = constant_outputs(tmp_path / "m.onnx", card, {"logits": np.array([[0.0, 1.0]], np.float32)}).read_bytes()
    model_id = backend.post("/backend/models", json={"name": "Tiny", "task_id": 1}, headers=owner).json()["id"]
    weights = backend.post(
        "/backend/weights", data={"name": "tiny", "model_id": str(model_id)}, files={"onnx_data": ("m.onnx", onnx)},
        headers=owner,
    )  # fmt: skip
    assert weights.status_code == 201, weights.text
    return owner, weights.json()["weight_id"], dataset.json()["id"]


@pytest.mark.parametrize(
    ("method", "extra"),
    [("PATCH", {"name": ""}), ("PUT", {"name": "", "public": False}), ("PATCH", {"classes": "only-one-class"})],
)
def test_a_refused_weights_update_changes_nothing(backend, weights_and_dataset, method, extra):
    """`dataset_id` is written first, then a later field fails: the 4xx must leave the row as it was."""
    headers, weights_id, dataset_id = weights_and_dataset
    before = backend.get(f"/backend/weights/{weights_id}", headers=headers).json()
    assert before["dataset_id"] is None
    response = backend.request(
        method, f"/backend/weights/{weights_id}", json={"dataset_id": dataset_id, **extra}, headers=headers
    )
    assert response.status_code == 400, response.text
    assert backend.get(f"/backend/weights/{weights_id}", headers=headers).json() == before
