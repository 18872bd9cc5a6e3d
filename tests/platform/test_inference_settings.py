"""Inference processes apply their settings (backend-api.md §9-§10) on a real `fovea serve`: Input height/width,
Test augmentations, and the Metric of the Test lines per task.

The models are tiny ONNX graphs whose outputs tell what they were fed: the input's own size, or where its bright
pixels are; the datasets carry labels, so each Test line's metric has a value computed by hand.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from fovea.core.card import ModelCard
from fovea.datasets import Sample, write_dataset_yaml
from tests.core.graphs import _save, bright_pixels_segmenter
from tests.platform.server import fovea_serve, fresh_home

pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "inference-settings-secret-3"
CLASSIFICATION, SEGMENTATION, REGRESSION = 1, 2, 5


@pytest.fixture(scope="module")
def api(zoo_dir, tmp_path_factory):
    home = fresh_home(zoo_dir, tmp_path_factory.mktemp("home"))
    with fovea_serve(home, ADMIN_PASSWORD) as url, httpx.Client(base_url=url, timeout=60) as client:
        token = client.post(
            "/backend/auth/token/",
            data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "client_id": "fovea"},
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def size_reader(path: Path) -> Path:
    """Regression on any input size: its two values are the height and width of the tensor it is fed."""
    card = ModelCard(
        name="size reader",
        task="regression",
        regressions=("height", "width"),
        input={"size": (16, 16)},
        decoder={"kind": "identity"},
    )
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("hw", TensorProto.FLOAT, ["N", 2])
    initializers = [
        numpy_helper.from_array(np.array([2], np.int64), "from"),
        numpy_helper.from_array(np.array([4], np.int64), "to"),
        numpy_helper.from_array(np.array(0, np.float32), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "one_axis"),
    ]
    nodes = [
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Slice", ["shape", "from", "to"], ["size"]),
        helper.make_node("Cast", ["size"], ["size_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
        helper.make_node("Unsqueeze", ["zeros", "one_axis"], ["column"]),  # (N, 1)
        helper.make_node("Add", ["column", "size_f"], ["hw"]),  # (N, 1) + (2,) -> (N, 2)
    ]
    return _save(helper.make_graph(nodes, "size_reader", [x], [y], initializers), card, path)


def where_is_it(path: Path) -> Path:
    """Regression on 8x8 gray images: sum over columns of (mean column value) x (column index). A white left half
    on black reads 0+1+2+3 = 6 through the card (x/255); mirrored, 4+5+6+7 = 22."""
    card = ModelCard(
        name="where",
        task="regression",
        regressions=("position",),
        input={"color": "GRAY", "size": (8, 8), "scale": 1 / 255, "mean": (0.0,), "std": (1.0,)},
        decoder={"kind": "identity"},
    )
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 1, 8, 8])
    y = helper.make_tensor_value_info("position", TensorProto.FLOAT, ["N", 1])
    initializers = [
        numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(8, 1), "ramp"),
        numpy_helper.from_array(np.array([-1, 1], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["columns"], axes=[1, 2], keepdims=0),  # (N, 8)
        helper.make_node("MatMul", ["columns", "ramp"], ["weighted"]),  # (N, 1)
        helper.make_node("Reshape", ["weighted", "shape"], ["position"]),
    ]
    return _save(helper.make_graph(nodes, "where", [x], [y], initializers), card, path)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_dataset(api, task_id, folder: Path, files: dict[str, bytes], samples: list[Sample], **labels) -> int:
    yaml = write_dataset_yaml(folder / "set.yml", "Set", labels.get("classes", ()), samples,
                              features=labels.get("features", ()))  # fmt: skip
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, data in files.items():
            zipped.writestr(f"set/{name}", data)
        zipped.writestr("set/set.yml", yaml.read_bytes())
    response = api.post(
        "/backend/datasets",
        data={"name": f"set-{folder.name}", "task_id": str(task_id)},
        files={"dataset_data": ("d.zip", archive.getvalue())},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def register(api, task_id, onnx_path: Path) -> dict[str, int]:
    model_id = api.post("/backend/models", json={"name": onnx_path.stem, "task_id": task_id}).json()["id"]
    weights = api.post(
        "/backend/weights",
        data={"name": onnx_path.stem, "model_id": str(model_id)},
        files={"onnx_data": ("m.onnx", onnx_path.read_bytes())},
    )
    assert weights.status_code == 201, weights.text
    project_id = api.post("/backend/projects", json={"name": onnx_path.stem, "task_id": task_id}).json()["id"]
    return {"modelweights_id": weights.json()["weight_id"], "project_id": project_id}


def launch(api, ids: dict[str, int], **properties: str) -> httpx.Response:
    items = [{"name": name.replace("_", " "), "value": value} for name, value in properties.items()]
    return api.post("/backend/inference", json={**ids, "properties": items})


def finished(api, response: httpx.Response) -> tuple[list[str], list[list]]:
    """The process's progress lines and output rows, once it has finished."""
    assert response.status_code == 201, response.text
    process_id = response.json()["process_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        [status] = api.get("/backend/status", params={"process_id": process_id, "full": "true"}).json()
        if status["status"]["process_status"] in ("finished", "failed", "stopped"):
            assert status["status"]["process_status"] == "finished", status
            rows = api.get("/backend/output", params={"process_id": process_id}).json()["outputs"]
            return status["status"]["process_data"], rows
        time.sleep(0.2)
    raise AssertionError("the inference did not end in time")


def metric(lines: list[str]) -> float:
    assert " - metric=" in lines[-1], lines
    return float(lines[-1].rsplit("=", 1)[1])


def test_input_size_reaches_a_network_that_takes_any_size_and_regression_reports_its_error(api, tmp_path):
    ids = register(api, REGRESSION, size_reader(tmp_path / "sizes.onnx"))
    files = {"a.png": png(np.zeros((20, 24, 3), np.uint8)), "b.png": png(np.zeros((50, 10, 3), np.uint8))}
    samples = [Sample("a.png", values={"height": 40, "width": 30}), Sample("b.png", values={"height": 40, "width": 35})]
    ids["dataset_id"] = upload_dataset(api, REGRESSION, tmp_path, files, samples, features=["height", "width"])

    lines, rows = finished(api, launch(api, ids, Input_height="40", Input_width="30"))
    assert [json.loads(value) for _, value in rows] == [[[40.0, 30.0]]] * 2  # not the card's 16x16
    assert metric(lines) == pytest.approx(5 / 4, abs=1e-3)  # mean absolute error: |30 - 35| over four values

    lines, _ = finished(api, launch(api, ids, Input_height="40", Input_width="30", Metric="mean_squared_error"))
    assert metric(lines) == pytest.approx(25 / 4, abs=1e-3)

    lines, rows = finished(api, launch(api, ids))  # no size asked: the card's
    assert [json.loads(value) for _, value in rows] == [[[16.0, 16.0]]] * 2


def test_a_static_input_size_must_be_asked_for_as_it_is(api):
    models = api.get("/backend/models", params={"task_id": CLASSIFICATION}).json()
    family = next(m for m in models if m["name"] == "LeNet")
    lenet = next(w for w in api.get("/backend/weights", params={"model_id": family["id"]}).json()
                 if w["name"] == "LeNet_Digits")  # fmt: skip
    digits = next(d for d in api.get("/backend/datasets", params={"task_id": CLASSIFICATION}).json()
                  if d["name"] == "Digits")  # fmt: skip
    project_id = api.post("/backend/projects", json={"name": "digits", "task_id": CLASSIFICATION}).json()["id"]
    ids = {"modelweights_id": lenet["id"], "dataset_id": digits["id"], "project_id": project_id}
    refused = launch(api, ids, Input_height="100", Input_width="100")
    assert refused.status_code == 400
    assert "the weights take 8x8 inputs" in refused.json()["error"]
    lines, rows = finished(api, launch(api, ids, Batch_size="64"))  # the card's 8x8 and the family's pipeline
    assert len(rows) == 269 and metric(lines) > 0.95  # accuracy on the labelled test split


def test_test_augmentations_are_applied_and_random_ones_averaged(api, tmp_path):
    ids = register(api, REGRESSION, where_is_it(tmp_path / "where.onnx"))
    left = np.zeros((8, 8), np.uint8)
    left[:, :4] = 255
    ids["dataset_id"] = upload_dataset(
        api, REGRESSION, tmp_path, {"left.png": png(left)}, [Sample("left.png", values={"position": 6})],
        features=["position"],
    )  # fmt: skip

    def position(augmentations: str | None) -> tuple[float, float]:
        properties = {"Test_augmentations": augmentations} if augmentations else {}
        lines, [[_, value]] = finished(api, launch(api, ids, **properties))
        return json.loads(value)[0][0], metric(lines)

    assert position(None) == (pytest.approx(6.0), pytest.approx(0.0))
    assert position("AugMirror p=1") == (pytest.approx(22.0), pytest.approx(16.0))
    # A pipeline that computes the network input itself: its values reach the network, the card's map is not
    # applied on top (white -> (1 - 0.5) / 0.5 = 1, black -> -1: 6 - 22).
    normalise = "SequentialAugmentationContainer\n AugToFloat32 divisor=255\n AugNormalize mean=0.5 std=0.5\nend"
    assert position(normalise)[0] == pytest.approx(-16.0)
    # A random flip: eight seeded draws averaged, so some of each, and the same again on a second run.
    averaged, error = position("AugMirror p=0.5")
    assert 6.0 < averaged < 22.0 and ((averaged - 6.0) / 2.0) == pytest.approx(round((averaged - 6.0) / 2.0))
    assert error == pytest.approx(averaged - 6.0, abs=1e-3)
    assert position("AugMirror p=0.5")[0] == pytest.approx(averaged)


def test_segmentation_reports_dice_and_refuses_augmentations_it_cannot_map_back(api, tmp_path):
    card = ModelCard(
        name="bright",
        task="segmentation",
        classes=["background", "bright"],
        input={"size": (64, 64)},
        decoder={"kind": "argmax"},
    )
    ids = register(api, SEGMENTATION, bright_pixels_segmenter(tmp_path / "bright.onnx", card))
    files, samples = {}, []
    for i in range(2):
        pixels = np.zeros((64, 64, 3), np.uint8)
        pixels[10:30, 10:30, 0] = 255  # found: 400 pixels
        mask = np.zeros((64, 64), np.uint8)
        mask[10:30, 10 : 30 + 10 * i] = 1  # true: the same square, then one 200 pixels wider
        files |= {f"img{i}.png": png(pixels), f"mask{i}.png": png(mask)}
        samples.append(Sample(f"img{i}.png", label=f"mask{i}.png"))
    ids["dataset_id"] = upload_dataset(api, SEGMENTATION, tmp_path, files, samples, classes=["background", "bright"])

    lines, _ = finished(api, launch(api, ids, Metric="dice"))
    assert metric(lines) == pytest.approx((1.0 + 2 * 400 / 1000) / 2, abs=1e-3)  # mean dice per image
    lines, _ = finished(api, launch(api, ids, Metric="accuracy"))
    assert metric(lines) == pytest.approx(1 - 200 / (2 * 64 * 64), abs=1e-3)  # pixel accuracy

    refused = launch(api, ids, Test_augmentations="AugMirror p=0.5")
    assert refused.status_code == 400
    assert "Test augmentations" in refused.json()["error"] and "map back" in refused.json()["error"]


def test_a_dataset_of_multi_plane_samples_is_refused_at_launch_not_read_a_plane_short(api, tmp_path):
    """A sample of two planes stacks them as two channels (dataset format §1.4); a model card takes one image per
    input, so the inference used to read the first plane of each and say nothing."""
    ids = register(api, REGRESSION, size_reader(tmp_path / "planes.onnx"))
    files = {name: png(np.zeros((8, 8), np.uint8)) for name in ("t1.png", "t2.png")}
    samples = [Sample(["t1.png", "t2.png"], values={"height": 8, "width": 8})]
    ids["dataset_id"] = upload_dataset(api, REGRESSION, tmp_path, files, samples, features=["height", "width"])
    refused = launch(api, ids)
    assert refused.status_code == 400, refused.text
    assert "multi-plane samples (2 planes stacked as channels)" in refused.json()["error"]
