"""Medical inference end to end on a real `fovea serve`: NIfTI datasets and single NIfTI images through `inference`
and `inferenceSingle` with 3-D models built here (a segmenter, a classifier), masks read back from `media/` as
`.nii.gz` with the scan's shape and affine, and the outputs in each `format=` (reference/backend-api.md §9)."""

from __future__ import annotations

import base64
import gzip
import io
import json
import time
import zipfile
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from scipy import ndimage

from fovea.core.card import ModelCard
from fovea.core.formats import rle_decode
from fovea.datasets import Sample, write_dataset_yaml
from tests.core.graphs import bright_voxels_segmenter
from tests.core.volume_graphs import bright_volume_classifier
from tests.platform.server import fovea_serve, fresh_home

ADMIN_PASSWORD = "volumes-e2e-secret-3"
CLASSIFICATION, SEGMENTATION = 1, 2
# Two CT scans of different shapes, voxel sizes and positions: (name, (depth, height, width), affine).
SCANS = [
    ("ct/a.nii.gz", (6, 20, 24), np.array([[-0.8, 0, 0, 90.0], [0, 0.8, 0, -120.0], [0, 0, 2.5, -40.0], [0, 0, 0, 1]])),
    ("ct/b.nii", (10, 12, 14), np.array([[1.2, 0, 0, -10.0], [0, 0, -1.5, 30.0], [0, 1.0, 0, 5.0], [0, 0, 0, 1]])),
]


def scan(shape, bright=True):
    """A CT volume in HU (depth, height, width): air, a water box, and a soft-tissue insert (80 HU) if `bright`."""
    d, h, w = shape
    hu = np.full(shape, -1000.0, np.float32)
    hu[:, h // 6 : -h // 6, w // 6 : -w // 6] = 0.0
    if bright:
        hu[d // 4 : -d // 4 or None, h // 3 : -h // 3, w // 3 : -w // 3] = 80.0
    return hu


def nifti(hu, affine, gzipped=True):
    """`hu` as int16 with scl_slope 1 / scl_inter -1024 and the given affine (voxel (x, y, z) to mm)."""
    image = nib.Nifti1Image(np.rint(hu + 1024).astype(np.int16).transpose(2, 1, 0), affine)
    image.header.set_slope_inter(1.0, -1024.0)
    raw = image.to_bytes()
    return gzip.compress(raw) if gzipped else raw


def read_mask(data):
    """A served `.nii.gz` mask: (class indices as (depth, height, width), affine, on-disk dtype)."""
    image = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    return np.asarray(image.dataobj).transpose(2, 1, 0), image.affine, image.get_data_dtype()


@pytest.fixture(scope="module")
def api(zoo_dir, tmp_path_factory):
    home = fresh_home(zoo_dir, tmp_path_factory.mktemp("home"))
    with fovea_serve(home, ADMIN_PASSWORD) as url, httpx.Client(timeout=60) as client:
        client.base_url = url
        token = client.post(
            "/backend/auth/token/",
            data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "client_id": "fovea"},
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def upload_dataset(api, task_id, tmp_path, files, classes, labels=None):
    """A zip of NIfTI files and their DeepHealth YAML, uploaded; all of it is the test split. Returns the id."""
    samples = [Sample(location=name, label=None if labels is None else labels[i]) for i, name in enumerate(files)]
    yaml = write_dataset_yaml(tmp_path / "set.yml", "CT", classes, samples)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, data in files.items():
            zipped.writestr(f"set/{name}", data)
        zipped.writestr("set/set.yml", yaml.read_bytes())
    response = api.post(
        "/backend/datasets",
        data={"name": f"ct-{task_id}-{tmp_path.name}", "task_id": str(task_id), "ctype": "GRAY"},
        files={"dataset_data": ("ct.zip", archive.getvalue())},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def register(api, task_id, onnx_path):
    """The ONNX file as weights of a new model, and a project of the task: (weights_id, project_id)."""
    model_id = api.post("/backend/models", json={"name": onnx_path.stem, "task_id": task_id}).json()["id"]
    weights = api.post(
        "/backend/weights",
        data={"name": onnx_path.stem, "model_id": str(model_id)},
        files={"onnx_data": ("m.onnx", onnx_path.read_bytes())},
    )
    assert weights.status_code == 201, weights.text
    project_id = api.post("/backend/projects", json={"name": onnx_path.stem, "task_id": task_id}).json()["id"]
    return weights.json()["weight_id"], project_id


def finished(api, launched):
    """Wait for the launched process to end; it must have finished. Returns its id."""
    assert launched.status_code == 201, launched.text
    process_id = launched.json()["process_id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        [status] = api.get("/backend/status", params={"process_id": process_id, "full": "true"}).json()
        if status["status"]["process_status"] in ("finished", "failed", "stopped"):
            assert status["status"]["process_status"] == "finished", status
            return process_id
        time.sleep(0.2)
    raise AssertionError("the inference did not end in time")


def outputs(api, process_id, fmt=None):
    response = api.get("/backend/output", params={"process_id": process_id, **({"format": fmt} if fmt else {})})
    assert response.status_code == 200, response.text
    return response.json()


def assert_insert(mask, hu):
    """Class 1 on the soft-tissue insert, give or take a voxel at its edges (the network sees a resized volume)."""
    insert = hu > 50
    assert mask[ndimage.binary_erosion(insert)].min() == 1
    assert mask[~ndimage.binary_dilation(insert)].max() == 0


@pytest.fixture(scope="module")
def segmenter(api, tmp_path_factory):
    card = ModelCard(
        name="ct-insert",
        task="segmentation",
        classes=["background", "insert"],
        input={"layout": "NCDHW", "color": "GRAY", "size": (8, 16, 16), "mean": [0], "std": [1],
               "window": {"range": [0, 100]}},  # 50 HU and up is over 0.5: the insert, not water or air
        decoder={"kind": "argmax"},
    )  # fmt: skip
    return register(api, SEGMENTATION, bright_voxels_segmenter(tmp_path_factory.mktemp("seg") / "seg3d.onnx", card))


@pytest.fixture(scope="module")
def segmentation_process(api, segmenter, tmp_path_factory):
    files = {name: nifti(scan(shape), affine, gzipped=name.endswith(".gz")) for name, shape, affine in SCANS}
    folder = tmp_path_factory.mktemp("segset")
    dataset_id = upload_dataset(api, SEGMENTATION, folder, files, ["background", "insert"])
    weights_id, project_id = segmenter
    body = {"modelweights_id": weights_id, "dataset_id": dataset_id, "project_id": project_id}
    return finished(api, api.post("/backend/inference", json=body))


def test_dataset_inference_serves_nifti_masks_with_the_scans_affine(api, segmentation_process):
    rows = outputs(api, segmentation_process)["outputs"]
    assert [name for name, _ in rows] == [name for name, _, _ in SCANS]
    for image_id, ((_, url), (_, shape, affine)) in enumerate(zip(rows, SCANS, strict=True)):
        assert httpx.URL(url).path == f"/backend/media/{segmentation_process}/{image_id}.nii.gz"
        served = api.get(httpx.URL(url).path)
        assert served.status_code == 200, served.text
        assert served.headers["content-type"] == "application/gzip"
        mask, mask_affine, dtype = read_mask(served.content)
        assert mask.shape == shape and dtype == np.uint8
        np.testing.assert_allclose(mask_affine, affine, atol=1e-5)  # the mask overlays the scan in a viewer
        assert set(np.unique(mask)) == {0, 1}  # two classes: class indices, not 0/255
        assert_insert(mask, scan(shape))
    assert httpx.get(str(api.base_url.join(f"/backend/media/{segmentation_process}/0.nii.gz"))).status_code == 401
    assert api.get(f"/backend/media/{segmentation_process}/0.png").status_code == 404
    assert api.get(f"/backend/media/{segmentation_process}/{len(SCANS)}.nii.gz").status_code == 404


def test_single_nifti_image_through_inference_single(api, segmenter):
    _, shape, affine = SCANS[0]
    hu = scan(shape)
    weights_id, project_id = segmenter
    data_url = "data:application/octet-stream;base64," + base64.b64encode(nifti(hu, affine)).decode()
    body = {"modelweights_id": weights_id, "project_id": project_id, "image_data": data_url}
    process_id = finished(api, api.post("/backend/inferenceSingle", json=body))
    [(image_name, url)] = outputs(api, process_id)["outputs"]
    assert image_name.startswith("UserImage") and image_name.endswith(".nii.gz")
    mask, mask_affine, _ = read_mask(api.get(httpx.URL(url).path).content)
    assert mask.shape == shape
    np.testing.assert_allclose(mask_affine, affine, atol=1e-5)
    assert_insert(mask, hu)

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG")
    png = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    refused = api.post("/backend/inferenceSingle", json={**body, "image_data": png})
    assert refused.status_code == 400 and "3-D model" in refused.json()["error"]  # before any process is created


def test_a_multi_frame_dicom_in_a_dataset_is_a_volume(api, segmenter, tmp_path):
    """A multi-frame DICOM file (pydicom's RT dose grid, 15 frames of 10x10) goes whole through the 3-D model; its
    mask has the frames' shape and spacing (DICOM gives no NIfTI affine: a diagonal one from the spacing)."""
    dose = Path(get_testdata_file("rtdose.dcm", download=False)).read_bytes()
    dataset_id = upload_dataset(api, SEGMENTATION, tmp_path, {"dose.dcm": dose}, ["background", "insert"])
    weights_id, project_id = segmenter
    body = {"modelweights_id": weights_id, "dataset_id": dataset_id, "project_id": project_id}
    [(name, url)] = outputs(api, finished(api, api.post("/backend/inference", json=body)))["outputs"]
    assert name == "dose.dcm" and url.endswith("/0.nii.gz")
    mask, affine, _ = read_mask(api.get(httpx.URL(url).path).content)
    assert mask.shape == (15, 10, 10) and set(np.unique(mask)) <= {0, 1}
    np.testing.assert_allclose(np.diag(affine), [10.0, 10.0, 5.0, 1.0])  # x, y from PixelSpacing; z between frames


def test_volume_outputs_in_every_format(api, segmentation_process):
    [first, second] = outputs(api, segmentation_process, "json")["predictions"]
    assert first["size"] == list(SCANS[0][1]) and second["size"] == list(SCANS[1][1])
    [insert] = [m for m in first["masks"] if m["name"] == "insert"]
    assert_insert(np.stack([rle_decode(plane) for plane in insert["rle"]]).astype(np.uint8), scan(SCANS[0][1]))
    supervisely = outputs(api, segmentation_process, "supervisely")
    # One annotation per slice, named after the scan and the slice, as Supervisely annotates 2-D images.
    depth, height, width = SCANS[0][1]
    assert [item["image_name"] for item in supervisely[:depth]] == [f"{SCANS[0][0]}#{z}" for z in range(depth)]
    assert len(supervisely) == sum(shape[0] for _, shape, _ in SCANS)
    assert supervisely[0]["annotation"]["size"] == {"height": height, "width": width}
    middle = supervisely[depth // 2]["annotation"]["objects"]
    assert [o["classTitle"] for o in middle] == ["background", "insert"]
    aicoco = outputs(api, segmentation_process, "aicoco")
    assert len(aicoco["images"]) == sum(shape[0] for _, shape, _ in SCANS)  # every slice of every scan
    [insert_id] = [c["id"] for c in aicoco["categories"] if c["name"] == "insert"]
    [insert_object] = [o["id"] for o in aicoco["objects"] if o["category_ids"] == [insert_id]][:1]
    drawn = {a["image_id"] for a in aicoco["annotations"] if a["object_id"] == insert_object}
    slices = [image["id"] for image in aicoco["images"][:depth]]
    hu = scan(SCANS[0][1])
    assert drawn == {slices[z] for z in range(depth) if (hu[z] > 50).any()}  # the insert's slices of scan a
    coco = api.get("/backend/output", params={"process_id": segmentation_process, "format": "coco"})
    assert coco.status_code == 400 and "2-D" in coco.json()["error"]


def test_3d_classification_by_dataset_and_single_image(api, tmp_path):
    card = ModelCard(
        name="ct-bright",
        task="classification",
        classes=["dark", "bright"],
        input={"layout": "NCDHW", "color": "GRAY", "size": (4, 8, 8), "mean": [0], "std": [1],
               "window": {"level": 40, "width": 400}},
        decoder={"kind": "softmax"},
    )  # fmt: skip
    weights_id, project_id = register(api, CLASSIFICATION, bright_volume_classifier(tmp_path / "cls3d.onnx", card))
    # Mean over the window: 1000 HU everywhere is bright, air everywhere is dark, the water box scan is dark too.
    volumes = {
        "bright.nii.gz": (np.full((5, 9, 11), 1000.0, np.float32), 1),
        "air.nii.gz": (np.full((7, 8, 8), -1000.0, np.float32), 0),
        "water.nii.gz": (scan((6, 20, 24)), 0),
    }
    files = {name: nifti(hu, np.eye(4)) for name, (hu, _) in volumes.items()}
    labels = [label for _, label in volumes.values()]
    dataset_id = upload_dataset(api, CLASSIFICATION, tmp_path, files, ["dark", "bright"], labels)
    body = {"modelweights_id": weights_id, "dataset_id": dataset_id, "project_id": project_id}
    process_id = finished(api, api.post("/backend/inference", json=body))
    rows = outputs(api, process_id)["outputs"]
    assert [name for name, _ in rows] == list(volumes)
    assert [int(np.argmax(json.loads(value)[0])) for _, value in rows] == labels
    predictions = outputs(api, process_id, "json")["predictions"]
    assert [p["classes"][0]["name"] for p in predictions] == ["bright", "dark", "dark"]
    assert [p["size"] for p in predictions] == [list(hu.shape) for hu, _ in volumes.values()]

    aicoco = outputs(api, process_id, "aicoco")
    names = {c["id"]: c["name"] for c in aicoco["categories"]}
    by_volume = [[names[i] for i in image["category_ids"]] for image in aicoco["images"]]
    assert by_volume == [["bright"]] * 5 + [["dark"]] * 7 + [["dark"]] * 6  # each volume's class on its slices
    supervisely = outputs(api, process_id, "supervisely")
    assert [(item["image_name"], item["annotation"]["tags"][0]["name"]) for item in supervisely] == [
        ("bright.nii.gz", "bright"),
        ("air.nii.gz", "dark"),
        ("water.nii.gz", "dark"),
    ]

    data_url = "data:application/octet-stream;base64," + base64.b64encode(files["bright.nii.gz"]).decode()
    single = {"modelweights_id": weights_id, "project_id": project_id, "image_data": data_url}
    [(_, value)] = outputs(api, finished(api, api.post("/backend/inferenceSingle", json=single)))["outputs"]
    assert np.argmax(json.loads(value)[0]) == 1
