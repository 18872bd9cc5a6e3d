"""Seed 003's flow: `train` from the catalog's pretrainings, followed to the end, then used; and its errors."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from fovea.datasets import Sample, write_dataset_yaml
from fovea.platform.bootstrap import seed_demo
from fovea.platform.db import Database
from fovea.platform.errors import InputError
from tests.platform.conftest import bearer, login, register, zip_of
from tests.platform.test_processes import wait

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def catalog(backend, zoo_dir):
    """The demo catalog (models, pretrainings, Digits) on the fresh platform, and a classification project."""
    db = Database(backend.settings.db_url)
    try:
        seed_demo(backend.settings, db, zoo_dir)
    finally:
        db.dispose()
    headers = bearer(login(backend))
    project = backend.post("/backend/projects", json={"name": "trainings", "task_id": 1}, headers=headers).json()
    return headers, project["id"]


def find(backend, headers, path, name):
    items = backend.get(f"/backend/{path}", headers=headers).json()
    return next(item for item in items if item["name"] == name)


def props(**values):
    names = {"lr": "Learning rate", "loss": "Loss function", "epochs": "Epochs", "batch": "batch size",
             "metric": "Metric", "height": "Input height", "width": "Input width",
             "train_aug": "Training augmentations", "val_aug": "Validation augmentations"}  # fmt: skip
    return [{"name": names[key], "value": str(value)} for key, value in values.items()]


def train(backend, headers, **body):
    return backend.post("/backend/train", json=body, headers=headers)


def test_train_from_scratch_on_digits_then_infer_and_deploy(backend, catalog):
    headers, project_id = catalog
    lenet = find(backend, headers, "models?task_id=1", "LeNet")
    start = find(backend, headers, f"weights?model_id={lenet['id']}", "LeNet_RandomInit")
    digits = find(backend, headers, "datasets?task_id=1", "Digits")
    [width] = backend.get(
        f"/backend/allowedProperties?property_id=7&model_id={lenet['id']}", headers=headers
    ).json()  # the seed's lookup of a model's input size
    assert width["default_value"] == "8"
    launched = train(
        backend, headers, project_id=project_id, dataset_id=digits["id"], weights_id=start["id"],
        properties=props(lr="0.002", loss="softmax_cross_entropy", metric="accuracy", epochs=8, batch=32),
    )  # fmt: skip
    assert launched.status_code == 201, launched.text
    process_id, weight_id = launched.json()["process_id"], launched.json()["weight_id"]
    assert set(launched.json()) == {"result", "process_id", "weight_id"}
    status = wait(backend, headers, process_id, timeout=300)  # how fast it trains is benchmarks/training.py's business
    assert status["result"] == "ok" and status["status"]["process_status"] == "finished", status
    lines = backend.get(f"/backend/status?process_id={process_id}&full=true", headers=headers).json()[0]
    lines = lines["status"]["process_data"]
    assert lines[0].startswith("Train - epoch [1/8] - batch [")
    assert "Train - epoch [8/8] - batch [40/40] - loss=" in "\n".join(lines)  # 1257 images / 32: 40 batches
    assert any(line.startswith("Validation - epoch [8/8] - batch [9/9] - loss=") for line in lines)
    assert float(lines[-1].rsplit("metric=", 1)[1]) >= 0.95

    produced = backend.get(f"/backend/weights/{weight_id}", headers=headers).json()
    assert produced["is_active"] and produced["pretrained_on"] == start["id"] and produced["dataset_id"] == digits["id"]
    assert produced["layer_to_remove"] == "final_layer" and produced["classes"] == ",".join(map(str, range(10)))
    [record] = backend.get(f"/backend/trainings?project_id={project_id}", headers=headers).json()
    assert record["celery_id"] == process_id and record["modelweights_id"] == weight_id
    assert record["process_status"] == "finished"
    stranger = register(backend, "stranger")
    assert backend.get(f"/backend/trainingSettings?training_id={record['id']}", headers=stranger).status_code == 404
    assert backend.get(f"/backend/trainings?project_id={project_id}", headers=stranger).status_code == 404
    settings = backend.get(f"/backend/trainingSettings?training_id={record['id']}", headers=headers).json()
    assert {"dataset_id": digits["id"], "model_id": lenet["id"], "modelweights_id": weight_id} == settings[-1]
    by_property = {row["property_id"]: row["value"] for row in settings[:-1]}
    assert by_property[3] == "8" and by_property[4] == "32" and by_property[2] == "softmax_cross_entropy"
    assert by_property[6] == "8" and "AugNormalize" in by_property[10]  # resolved from allowedProperties

    inference = backend.post(
        "/backend/inference",
        json={"modelweights_id": weight_id, "dataset_id": digits["id"], "project_id": project_id},
        headers=headers,
    )
    done = wait(backend, headers, inference.json()["process_id"])
    assert float(done["status"]["process_data"].rsplit("=", 1)[1]) >= 0.95  # test-split accuracy

    session = backend.post("/backend/sessions", json={"modelweights_id": weight_id}, headers=headers).json()
    home = backend.settings.home
    seven = next((home / "storage").rglob("digit_0007.png")).read_bytes()  # a 7 in the Digits data
    answer = backend.post(f"/net/{session['token']}/inference_image", files={"files": ("7.png", seven)})
    assert answer.status_code == 200 and answer.json()["annotation"]["tags"][0]["name"] == "7"


@SQLITE_ONLY
def test_stop_mid_epoch_keeps_the_last_checkpoint(backend, catalog):
    import fovea

    headers, project_id = catalog
    lenet = find(backend, headers, "models?task_id=1", "LeNet")
    start = find(backend, headers, f"weights?model_id={lenet['id']}", "LeNet_RandomInit")
    digits = find(backend, headers, "datasets?task_id=1", "Digits")
    launched = train(
        backend, headers, project_id=project_id, dataset_id=digits["id"], weights_id=start["id"],
        properties=props(epochs=500, batch=4),
    ).json()  # fmt: skip
    deadline = time.monotonic() + 600  # generous: an epoch takes seconds, or minutes on a loaded machine
    while True:  # until a checkpoint exists: the first validation pass has ended
        lines = backend.get(f"/backend/status?process_id={launched['process_id']}&full=true", headers=headers).json()
        if any(line.startswith("Train - epoch [2/") for line in lines[0]["status"]["process_data"]):
            break
        assert time.monotonic() < deadline, "the training never reached its second epoch"
        time.sleep(0.2)
    viewer = register(backend, "viewer")
    stopped_by_stranger = backend.post(
        "/backend/stopProcess", json={"process_id": launched["process_id"]}, headers=viewer
    )
    assert stopped_by_stranger.status_code == 404
    stop = backend.post("/backend/stopProcess", json={"process_id": launched["process_id"]}, headers=headers)
    assert stop.status_code == 200 and stop.json() == {"result": "Training stopped"}
    first = backend.get(f"/backend/status?process_id={launched['process_id']}&full=true", headers=headers).json()[0]
    executor = backend.app.app.state.executor  # the platform app, inside the session host
    assert executor.workers == 1  # so the pool runs jobs one after the other: a no-op queued now runs after it
    # Runs once the training job has ended, which it does on noticing the stop (500 epochs would take many minutes).
    executor.pool.submit(int).result(timeout=120)
    second = backend.get(f"/backend/status?process_id={launched['process_id']}&full=true", headers=headers).json()[0]
    assert second["status"]["process_status"] == "stopped"
    # No line after the stop, but for one a batch may have begun writing as the stop committed.
    assert second["status"]["process_data"][: len(first["status"]["process_data"])] == first["status"]["process_data"]
    assert len(second["status"]["process_data"]) <= len(first["status"]["process_data"]) + 1
    weights = backend.get(f"/backend/weights/{launched['weight_id']}", headers=headers).json()
    assert weights["is_active"] is False
    checkpoint = backend.settings.storage_dir / "weights" / f"{launched['weight_id']}.onnx"
    model = fovea.load(checkpoint)  # the last good checkpoint, a complete ONNX file with its card
    assert model.card.class_names == tuple(str(d) for d in range(10))


def test_bad_requests_name_the_problem(backend, catalog, zoo_dir):
    headers, project_id = catalog
    lenet = find(backend, headers, "models?task_id=1", "LeNet")
    start = find(backend, headers, f"weights?model_id={lenet['id']}", "LeNet_RandomInit")
    digits = find(backend, headers, "datasets?task_id=1", "Digits")
    unet = find(backend, headers, "models?task_id=2", "U-Net")
    unet_weights = find(backend, headers, f"weights?model_id={unet['id']}", "U-Net_RandomInit")
    base = {"project_id": project_id, "dataset_id": digits["id"], "weights_id": start["id"]}

    def error(**body):
        response = train(backend, headers, **{**base, **body})
        assert response.status_code == 400, response.text
        return response.json()["error"]

    assert "'Epochs'" in error(properties=props(epochs="many"))
    assert "'Batch size'" in error(properties=props(batch=0))
    assert "'Loss function'" in error(properties=props(loss="hinge"))
    assert "dice" in error(properties=props(metric="dice"))  # not a classification metric
    message = error(properties=props(train_aug="SequentialAugmentationContainer\n  AugFlipp p=0.5\nend"))
    assert "Training augmentations" in message and "AugFlipp" in message and "AugFlip" in message
    assert "unknown property" in error(properties=[{"name": "Momentum", "value": "0.9"}])
    assert "given twice" in error(properties=[{"name": "Epochs", "value": "1"}, {"name": "epochs", "value": "2"}])
    assert "Input height to 8" in error(properties=props(height=32))  # the weights' static input size
    assert error(weights_id=unet_weights["id"]) == "Model and dataset must belong to the same task"
    assert "cannot be used with dataset" in _refused_pairing(backend, headers, base, lenet, zoo_dir)
    assert train(backend, headers, **{**base, "weights_id": 99999}).status_code == 404
    viewer = register(backend, "viewer2")
    assert train(backend, viewer, **base).status_code == 404  # an invisible project
    assert not backend.get(
        "/backend/trainings?project_id=" + str(project_id), headers=headers
    ).json()  # no partial rows
    assert backend.get("/backend/trainings", headers=headers).status_code == 400
    assert backend.get("/backend/trainingSettings", headers=headers).status_code == 400


def test_a_dataset_colour_type_the_weights_cannot_take_is_refused(backend, catalog, digits_zip):
    from sqlalchemy import func, select

    from fovea.platform.models import Process, Weights
    from fovea.platform.trainings import check_channels

    headers, project_id = catalog
    lenet = find(backend, headers, "models?task_id=1", "LeNet")
    start = find(backend, headers, f"weights?model_id={lenet['id']}", "LeNet_RandomInit")  # a GRAY (1-channel) net
    dataset_id = upload(backend, headers, "RGB digits", 1, digits_zip, ctype="RGB")
    db = Database(backend.settings.db_url)

    def rows():
        with db.transaction() as session:
            return [session.scalar(select(func.count()).select_from(table)) for table in (Process, Weights)]

    try:
        before = rows()
        response = train(backend, headers, project_id=project_id, dataset_id=dataset_id, weights_id=start["id"],
                         properties=props(epochs=1))  # fmt: skip
        assert response.status_code == 400, response.text
        assert response.json()["error"] == (
            "dataset 'RGB digits' is RGB (3 channels) but weights 'LeNet_RandomInit' expect 1 input channel"
        )
        assert rows() == before  # no process, no new weights
    finally:
        db.dispose()
    assert not backend.get(f"/backend/trainings?project_id={project_id}", headers=headers).json()

    rgb, gray = SimpleNamespace(name="d", ctype="RGB"), SimpleNamespace(name="d", ctype="GRAY")
    weights = SimpleNamespace(name="w")
    check_channels(rgb, weights, [None, None, 8, 8])  # a dynamic channel axis is not checked
    check_channels(SimpleNamespace(name="d", ctype=None), weights, [1, 1, 8, 8])  # nor a dataset without ctype
    check_channels(gray, weights, [1, 1, 8, 8])
    with pytest.raises(InputError, match=r"'d' is GRAY \(1 channel\) but weights 'w' expect 3 input channels"):
        check_channels(gray, weights, [None, 3, 224, 224])
    check_channels(SimpleNamespace(name="d", ctype="YCBCR"), weights, [None, 3, 8, 8])  # a card can serve YCbCr
    with pytest.raises(InputError, match=r"'d': colour type RGBA trains a network that serving cannot feed"):
        check_channels(SimpleNamespace(name="d", ctype="RGBA"), weights, [None, 4, 8, 8])
    with pytest.raises(InputError, match=r"'d' is BGR \(3 channels\) but weights 'w' expect 1 input channel"):
        check_channels(SimpleNamespace(name="d", ctype="BGR"), weights, [None, 1, 8, 8])


def _refused_pairing(backend, headers, base, lenet, zoo_dir):
    """Weights with classes of their own, no dataset and no layer_to_remove fit no other class list (rule 5)."""
    import onnx

    plain = onnx.load(str(zoo_dir / "digits-lenet.onnx"))
    del plain.metadata_props[:]  # no card: the classes come from the upload
    uploaded = backend.post(
        "/backend/weights",
        data={"name": "fixed head", "model_id": str(lenet["id"]), "classes": ",".join("abcdefghij")},
        files={"onnx_data": ("m.onnx", plain.SerializeToString())},
        headers=headers,
    ).json()["weight_id"]
    listed = backend.get(f"/backend/weights?model_id={lenet['id']}&dataset_id={base['dataset_id']}", headers=headers)
    assert uploaded not in [w["id"] for w in listed.json()]  # the fine-tuning filter of `weights?dataset_id=`
    response = train(backend, headers, **{**base, "weights_id": uploaded})
    assert response.status_code == 400
    return response.json()["error"]


def _write_split(samples):
    order = np.random.default_rng(0).permutation(len(samples))
    a, b = round(0.7 * len(order)), round(0.85 * len(order))
    return {"training": sorted(order[:a].tolist()), "validation": sorted(order[a:b].tolist()),
            "test": sorted(order[b:].tolist())}  # fmt: skip


def faces_zip(tmp_path):
    """scikit-image's lfw_subset: 100 faces and 100 non-faces (25x25), as an RGB two-class dataset."""
    from skimage import data

    root = tmp_path / "faces"
    (root / "images").mkdir(parents=True)
    samples = []
    for i, pixels in enumerate(data.lfw_subset()):
        location = f"images/{i:03d}.png"
        Image.fromarray((pixels * 255).round().astype(np.uint8)).convert("RGB").save(root / location)
        samples.append(Sample(location=location, label=0 if i < 100 else 1))
    write_dataset_yaml(root / "faces.yml", "Faces", ["face", "non_face"], samples, _write_split(samples))
    return zip_of({f"faces/{p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()})


def coins_zip(tmp_path):
    """scikit-image's coins photo in 64x64 tiles, with masks from Otsu's threshold and filled holes."""
    from scipy import ndimage
    from skimage import data, filters

    image = data.coins()
    mask = ndimage.binary_fill_holes(image > filters.threshold_otsu(image))
    root = tmp_path / "coins"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    samples = []
    for y in range(0, image.shape[0] - 63, 32):
        for x in range(0, image.shape[1] - 63, 32):
            name = f"{y:03d}_{x:03d}.png"
            Image.fromarray(image[y : y + 64, x : x + 64]).save(root / "images" / name)
            Image.fromarray((mask[y : y + 64, x : x + 64] * 255).astype(np.uint8)).save(root / "masks" / name)
            samples.append(Sample(location=f"images/{name}", label=f"masks/{name}"))
    write_dataset_yaml(root / "coins.yml", "Coins", [], samples, _write_split(samples))
    files = {f"coins/{p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return zip_of(files), root, [samples[i] for i in _write_split(samples)["test"]]


def upload(backend, headers, name, task_id, archive, ctype="RGB"):
    response = backend.post(
        "/backend/datasets", data={"name": name, "task_id": str(task_id), "ctype": ctype},
        files={"dataset_data": ("d.zip", archive)}, headers=headers,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.slow
@SQLITE_ONLY
def test_fine_tune_efficientnet_imagenet_on_faces(backend, catalog, tmp_path):
    headers, project_id = catalog
    model = find(backend, headers, "models?task_id=1", "EfficientNet-Lite0")
    imagenet = find(backend, headers, f"weights?model_id={model['id']}", "EfficientNet-Lite0_ImageNet")
    dataset_id = upload(backend, headers, "Faces", 1, faces_zip(tmp_path))
    usable = backend.get(f"/backend/weights?model_id={model['id']}&dataset_id={dataset_id}", headers=headers).json()
    assert imagenet["id"] in [w["id"] for w in usable]  # it has a layer_to_remove: a new head fits any classes
    launched = train(
        backend, headers, project_id=project_id, dataset_id=dataset_id, weights_id=imagenet["id"],
        properties=props(lr="0.0005", epochs=2, batch=16, loss="cross_entropy", metric="accuracy"),
    )  # fmt: skip
    assert launched.status_code == 201, launched.text
    status = wait(backend, headers, launched.json()["process_id"], timeout=240)
    assert status["status"]["process_status"] == "finished", status
    lines = backend.get(f"/backend/status?process_id={launched.json()['process_id']}&full=true", headers=headers)
    validation = [line for line in lines.json()[0]["status"]["process_data"] if line.startswith("Validation")]
    assert max(float(line.rsplit("metric=", 1)[1]) for line in validation) >= 0.9
    weights = backend.get(f"/backend/weights/{launched.json()['weight_id']}", headers=headers).json()
    assert weights["classes"] == "face,non_face" and weights["layer_to_remove"] == "final_layer"


@pytest.mark.slow
@SQLITE_ONLY
def test_segmentation_training_reaches_dice_on_the_test_split(backend, catalog, tmp_path):
    headers, _ = catalog
    project_id = backend.post("/backend/projects", json={"name": "masks", "task_id": 2}, headers=headers).json()["id"]
    archive, root, test_samples = coins_zip(tmp_path)
    dataset_id = upload(backend, headers, "Coins", 2, archive, ctype="GRAY")
    unet = find(backend, headers, "models?task_id=2", "U-Net")
    start = find(backend, headers, f"weights?model_id={unet['id']}", "U-Net_RandomInit")
    launched = train(
        backend, headers, project_id=project_id, dataset_id=dataset_id, weights_id=start["id"],
        properties=props(epochs=10, batch=8),  # the U-Net's defaults: binary cross-entropy, dice, flips
    )  # fmt: skip
    assert launched.status_code == 201, launched.text
    status = wait(backend, headers, launched.json()["process_id"], timeout=180)
    assert status["status"]["process_status"] == "finished", status
    # Dice over the test split, from the masks the server hands out: an inference process with the trained
    # weights, its output rows, and each row's mask from the `media/` route.
    inference = backend.post(
        "/backend/inference",
        json={"modelweights_id": launched.json()["weight_id"], "dataset_id": dataset_id, "project_id": project_id},
        headers=headers,
    )
    assert inference.status_code == 201, inference.text
    process_id = inference.json()["process_id"]
    assert wait(backend, headers, process_id)["status"]["process_status"] == "finished"
    rows = backend.get(f"/backend/output?process_id={process_id}", headers=headers).json()["outputs"]
    assert [name for name, _ in rows] == [sample.location for sample in test_samples]
    overlap = total = 0
    for sample, (_, mask_url) in zip(test_samples, rows, strict=True):
        served = backend.get(httpx.URL(mask_url).path, headers=headers)
        assert served.status_code == 200 and served.headers["content-type"] == "image/png"
        mask = np.asarray(Image.open(io.BytesIO(served.content)))
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}  # one class: 0/255 at the image size
        predicted = mask == 255
        truth = np.asarray(Image.open(root / sample.label)) > 0
        overlap += 2 * (predicted & truth).sum()
        total += predicted.sum() + truth.sum()
    assert overlap / total >= 0.8
