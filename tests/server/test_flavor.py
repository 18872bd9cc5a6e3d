"""FLaVor's /ping and /invocations (AiCOCO) against real serve-model processes, for every task."""

import io
import json
import random

import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from fovea.core.card import ModelCard
from tests.core.graphs import bright_voxels_segmenter, constant_outputs
from tests.server.conftest import DETECTOR_BOXES
from tests.servers import serve


def entry(i, name, **extra):
    return {"id": f"img-{i}", "index": i, "file_name": name, "category_ids": None, "regressions": None, **extra}


def invoke(url, files, images, **fields):
    data = {"images": json.dumps(images), **{k: json.dumps(v) for k, v in fields.items()}}
    return httpx.post(f"{url}/invocations", data=data, files=[("files", f) for f in files], timeout=60)


def png(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_ping_and_classification(imagenet_url, zoo_dir):
    assert httpx.get(f"{imagenet_url}/ping").status_code == 204
    chelsea = (zoo_dir / "samples" / "chelsea.jpg").read_bytes()
    response = invoke(imagenet_url, [("chelsea.jpg", chelsea)], [entry(0, "chelsea.jpg", patient="P-1")])
    assert response.status_code == 200, response.text
    out = response.json()
    assert list(out) == ["images", "annotations", "categories", "regressions", "objects", "meta"]
    [image] = out["images"]
    assert image["patient"] == "P-1" and len(image["category_ids"]) == 1
    top = next(c for c in out["categories"] if c["id"] == image["category_ids"][0])
    assert "cat" in top["name"]


def test_entry_fields_are_echoed_exactly_even_past_64_bits(imagenet_url, zoo_dir):
    chelsea = (zoo_dir / "samples" / "chelsea.jpg").read_bytes()
    extra = {"accession": 2**70, "note": "Å 猫", "weight": 0.1}
    response = invoke(imagenet_url, [("chelsea.jpg", chelsea)], [entry(0, "chelsea.jpg", **extra)])
    assert response.status_code == 200, response.text
    [image] = response.json()["images"]
    assert {key: image[key] for key in extra} == extra


def test_detection_boxes_in_original_pixels(detector_url):
    scene = png(np.zeros((480, 640, 3), np.uint8))
    out = invoke(detector_url, [("scene.png", scene)], [entry(0, "scene.png")], settings={"conf_thres": 0.5}).json()
    dog = next(c["id"] for c in out["categories"] if c["name"] == "dog")
    cat = next(c["id"] for c in out["categories"] if c["name"] == "cat")
    assert [o["category_ids"] for o in out["objects"]] == [[dog], [cat]]
    assert [a["bbox"] for a in out["annotations"]] == [[box] for box in DETECTOR_BOXES]
    assert out["objects"][0]["confidence"] == pytest.approx(0.9)


def test_2d_segmentation_polygons_and_several_images(segmenter_url):
    pixels = np.zeros((100, 120, 3), np.uint8)
    pixels[20:60, 30:90, 0] = 255
    images = [entry(1, "b.png"), entry(0, "a.png")]
    out = invoke(
        segmenter_url, [("a.png", png(pixels)), ("b.png", png(np.zeros((50, 50, 3), np.uint8)))], images
    ).json()
    assert [i["id"] for i in out["images"]] == ["img-0", "img-1"]  # ascending index
    [annotation] = out["annotations"]
    assert annotation["image_id"] == "img-0" and annotation["bbox"] is None
    [polygon] = annotation["segmentation"]
    xs, ys = polygon[0::2], polygon[1::2]
    assert abs(min(xs) - 30) <= 2 and abs(max(xs) - 89) <= 2 and abs(min(ys) - 20) <= 2 and abs(max(ys) - 59) <= 2
    assert out["categories"][1]["color"] == "#FF0000" and out["categories"][0]["display"] is False


def test_regression(tmp_path):
    card = ModelCard(
        name="age", task="regression", regressions=["age"], input={"size": (16, 16)}, decoder={"kind": "identity"}
    )
    path = constant_outputs(tmp_path / "age.onnx", card, {"age": np.array([[42.5]], np.float32)})
    with serve(path) as url:
        out = invoke(url, [("x.png", png(np.zeros((20, 20, 3), np.uint8)))], [entry(0, "x.png")]).json()
    assert out["images"][0]["regressions"] == [{"regression_id": out["regressions"][0]["id"], "value": 42.5}]


# -- 3-D: a DICOM series and the same study as NIfTI ------------------------------------------------

SLICES = 4


def study():
    """Slice k of 64x64 has a bright square on slices 1..3 only, growing with k."""
    volume = np.zeros((SLICES, 64, 64), np.int16)
    for k in range(1, SLICES):
        volume[k, 10 : 20 + 5 * k, 10 : 20 + 5 * k] = 1000
    return volume


def dicom_series(volume):
    files = []
    for k, plane in enumerate(volume):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.Rows, ds.Columns = plane.shape
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = plane.tobytes()
        ds.ImagePositionPatient = [0, 0, -120 + 2.5 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append((f"s{k}.dcm", buffer.getvalue()))
    return files


@pytest.fixture(scope="module")
def volume_url(tmp_path_factory):
    card = ModelCard(
        name="organ-3d",
        task="segmentation",
        classes=[{"name": "Background", "display": False}, "Organ"],
        input={"layout": "NCDHW", "color": "GRAY", "size": (SLICES, 32, 32), "mean": [0], "std": [1]},
        decoder={"kind": "argmax"},
    )
    with serve(bright_voxels_segmenter(tmp_path_factory.mktemp("vol") / "vol.onnx", card)) as url:
        yield url


def slices_by_image(out):
    return {a["image_id"]: a["segmentation"] for a in out["annotations"]}


def test_dicom_series_shuffled_gives_one_annotation_per_slice(volume_url):
    files = dicom_series(study())
    entries = [entry(k, name) for k, (name, _) in enumerate(files)]
    random.Random(3).shuffle(files)
    random.Random(4).shuffle(entries)
    out = invoke(volume_url, files, entries).json()
    assert [i["file_name"] for i in out["images"]] == [f"s{k}.dcm" for k in range(SLICES)]  # anatomical order
    assert len(out["objects"]) == 1
    by_image = slices_by_image(out)
    assert sorted(by_image) == ["img-1", "img-2", "img-3"]  # nothing on slice 0


def test_nifti_volume_gives_the_same_segmentation(volume_url, tmp_path):
    volume = study()
    dicom = invoke(volume_url, dicom_series(volume), [entry(k, f"s{k}.dcm") for k in range(SLICES)]).json()
    image = nib.Nifti1Image(volume.transpose(2, 1, 0).astype(np.float32), np.eye(4))
    nib.save(image, tmp_path / "study.nii.gz")
    entries = [entry(k, "study.nii.gz") for k in range(SLICES)]
    nifti = invoke(volume_url, [("study.nii.gz", (tmp_path / "study.nii.gz").read_bytes())], entries).json()
    assert slices_by_image(nifti) == slices_by_image(dicom)
    bad = invoke(volume_url, [("study.nii.gz", (tmp_path / "study.nii.gz").read_bytes())], entries[:2])
    assert bad.status_code == 400 and "slices" in bad.json()["error"]


@pytest.mark.parametrize(
    ("files", "images", "fields", "message"),
    [
        ([("a.png", b"x")], [entry(0, "b.png")], {}, "uploaded files do not match"),
        ([("a.png", b"x")], {"id": "0"}, {}, "non-empty JSON array"),
        ([("a.png", b"x")], [{"id": 0, "index": 0, "file_name": "a.png"}], {}, "invalid `images`"),
        ([("a.png", b"not an image")], [entry(0, "a.png")], {}, "a.png"),
        ([("a.png", b"x")], [entry(0, "a.png")], {"settings": {"nope": 1}}, "acceptable keys"),
        ([("a.png", b"x")], [entry(0, "a.png")], {"tables": []}, "tables"),
    ],
)
def test_bad_requests_are_400_naming_the_problem(segmenter_url, files, images, fields, message):
    response = invoke(segmenter_url, files, images, **fields)
    assert response.status_code == 400
    body = response.json()
    assert message in body["error"] and "Traceback" not in response.text
    if message == "uploaded files do not match":
        assert body["detail"] == {"missing_files": ["b.png"], "unreferenced_files": ["a.png"]}
    if message == "invalid `images`":
        locs = [d["loc"] for d in body["detail"]]
        assert ["images", 0, "id"] in locs and ["images", 0, "category_ids"] in locs


def test_a_2d_model_refuses_a_volume(segmenter_url, tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    response = invoke(segmenter_url, [("v.nii.gz", (tmp_path / "v.nii.gz").read_bytes())], [entry(0, "v.nii.gz")])
    assert response.status_code == 400
    assert "v.nii.gz is a volume, but bright takes 2-D images" in response.json()["error"]


DEEP = "[" * 5000 + "]" * 5000  # json.loads recurses per level: past the interpreter's recursion limit


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"images": DEEP}, "form field 'images' is JSON nested too deeply"),
        ({"settings": '{"a":' * 5000 + "1" + "}" * 5000}, "form field 'settings' is JSON nested too deeply"),
        ({"images": b"[]\xff\xfe"}, "malformed multipart body: form field 'images' is not valid UTF-8"),
        ({"metadata": "patient P-1, not JSON"}, "form field 'metadata' is not valid JSON"),
        # Python's json reads NaN and Infinity, which JSON has not: echoed back in the AiCOCO answer they were a 500.
        ({"images": json.dumps([entry(0, "a.png", weight=float("nan"))])}, "form field 'images' is not valid JSON"),
        ({"metadata": '{"dose": Infinity}'}, "form field 'metadata' is not valid JSON"),
    ],
    ids=["deep-images", "deep-settings", "images-not-utf8", "metadata-not-json", "nan-in-images", "infinity"],
)
def test_hostile_text_fields_are_400(segmenter_url, fields, message):
    data = {"images": json.dumps([entry(0, "a.png")]), **fields}
    files = [("files", ("a.png", png(np.zeros((8, 8, 3), np.uint8))))]
    response = httpx.post(f"{segmenter_url}/invocations", data=data, files=files, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": message, "detail": None}
