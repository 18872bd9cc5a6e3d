"""Custom models served (seed 004): a `BaseInferenceModel` subclass behind a real `/ping` + `/invocations` server.

`SeriesClassifier` is the user's model: its own reader (DICOM series sorted by position, or one NIfTI volume), a
"network" that takes the mean intensity, and a threshold that a request may change through an extra form field.
The servers are real processes: `fovea serve-model tests.server.test_infer_app:SeriesClassifier` and the seed's
`InferAPP(...).run()`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from fovea import AiCOCOClassificationOutputStrategy, BaseInferenceModel, InputError
from tests.servers import running as server_running

# -- the user's model -------------------------------------------------------------------------------


class SeriesClassifier(BaseInferenceModel):
    """Calls a 3-D series "bright" when its mean intensity reaches `threshold` (default 500), else "dark"."""

    def define_inference_network(self):
        return lambda volume: float(volume.mean())

    def set_categories(self):
        return [{"name": "dark", "supercategory_name": None}, {"name": "bright", "supercategory_name": None}]

    def set_regressions(self):
        return None

    def data_reader(self, files=None, metadata=None, **kwargs):
        stored = [os.path.basename(f) for f in files]
        self.seen = {"metadata": metadata, "folder": os.path.dirname(files[0]), "stored": stored}
        if len(files) == 1 and files[0].endswith(".nii.gz"):
            volume = np.asarray(nib.load(files[0]).dataobj).transpose(2, 1, 0)  # (z, y, x)
            return volume, None
        try:
            slices = [pydicom.dcmread(f) for f in files]
        except pydicom.errors.InvalidDicomError:
            raise InputError("every file must be a DICOM slice or the series one NIfTI volume") from None
        order = sorted(range(len(files)), key=lambda i: float(slices[i].ImagePositionPatient[2]))
        return np.stack([slices[i].pixel_array for i in order]), [files[i] for i in order]

    def inference(self, x, crash=False):
        if crash:
            raise RuntimeError("the network fell over")
        self.seen["thread"] = threading.current_thread().name
        return self.network(x)

    def postprocess(self, out, threshold=500):
        return {"label": int(out >= threshold), "mean": out}

    def output_formatter(self, model_out, images, categories=None, regressions=None, **kwargs):
        one_hot = np.eye(len(categories))[model_out["label"]]
        out = AiCOCOClassificationOutputStrategy()(model_out=one_hot, images=images, categories=categories)
        out["meta"].update(mean=model_out["mean"], **self.seen)  # for the tests to see what the hooks saw
        return out


# -- inputs ---------------------------------------------------------------------------------------


def dicom_series(levels: list[int]) -> list[tuple[str, bytes]]:
    """One 16x16 slice per level, every pixel at that level; slice k sits at z = 10 * k."""
    files = []
    for k, level in enumerate(levels):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.Rows, ds.Columns = 16, 16
        ds.PixelData = np.full((16, 16), level, np.int16).tobytes()
        ds.ImagePositionPatient = [0, 0, 10 * k]
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append((f"slice{k}.dcm", buffer.getvalue()))
    return files


def nifti_gz(volume_zyx: np.ndarray) -> bytes:
    return gzip.compress(nib.Nifti1Image(volume_zyx.transpose(2, 1, 0), np.eye(4)).to_bytes())


def entry(i: int, name: str, **extra) -> dict:
    return {"id": f"img-{i}", "index": i, "file_name": name, "category_ids": None, "regressions": None, **extra}


def invoke(url: str, files, images, **fields) -> httpx.Response:
    data = {"images": json.dumps(images), **{k: json.dumps(v) for k, v in fields.items()}}
    return httpx.post(f"{url}/invocations", data=data, files=[("files", f) for f in files], timeout=60)


def category(out: dict, category_id: str) -> str:
    return next(c["name"] for c in out["categories"] if c["id"] == category_id)


# -- servers --------------------------------------------------------------------------------------


def running(command_for: Callable[[int], list[str]]) -> contextlib.AbstractContextManager[str]:
    """Start `command_for(port)` and yield its URL once `/ping` answers 204, as FLaVor's client waits; stop it after."""
    return server_running(command_for, "/ping", 204)


def serve_model(*options: str) -> Callable[[int], list[str]]:
    spec = f"{__name__}:SeriesClassifier"
    return lambda port: [sys.executable, "-m", "fovea.cli", "serve-model", spec, "--port", str(port), *options]


@pytest.fixture(scope="module")
def cli_url() -> Iterator[str]:
    with running(serve_model()) as url:
        yield url


# -- tests ----------------------------------------------------------------------------------------


def test_ping_answers_204_with_an_empty_body(cli_url):
    response = httpx.get(f"{cli_url}/ping")
    assert response.status_code == 204 and response.content == b""
    assert httpx.post(f"{cli_url}/ping").status_code == 405


def test_a_shuffled_dicom_series_is_classified_in_the_series_meta(cli_url):
    files = dicom_series([900, 1000, 800])  # mean 900: bright
    entries = [entry(k, name, patient="P-7") for k, (name, _) in enumerate(files)]
    response = invoke(cli_url, files[::-1], entries[1:] + entries[:1])
    assert response.status_code == 200, response.text
    out = response.json()
    assert list(out) == ["images", "annotations", "categories", "regressions", "objects", "meta"]
    assert [i["file_name"] for i in out["images"]] == ["slice0.dcm", "slice1.dcm", "slice2.dcm"]  # the reader's order
    assert all(i["patient"] == "P-7" and i["category_ids"] is None for i in out["images"])
    assert [category(out, c) for c in out["meta"]["category_ids"]] == ["bright"]
    assert out["meta"]["mean"] == pytest.approx(900)
    assert out["meta"]["thread"].startswith("fovea-infer")  # the model ran on a worker thread, not the event loop


def test_the_reader_gets_paths_under_generated_names_removed_after_the_request(cli_url):
    files = dicom_series([100, 200])
    out = invoke(cli_url, files, [entry(k, name) for k, (name, _) in enumerate(files)]).json()
    assert out["meta"]["stored"] == ["0000.dcm", "0001.dcm"]  # never the client's names, suffix kept
    assert not os.path.exists(out["meta"]["folder"])


def test_extra_form_fields_reach_the_hooks(cli_url):
    files = dicom_series([300, 300])
    entries = [entry(k, name) for k, (name, _) in enumerate(files)]
    plain = invoke(cli_url, files, entries).json()
    assert [category(plain, c) for c in plain["meta"]["category_ids"]] == ["dark"] and plain["meta"]["metadata"] is None
    out = invoke(cli_url, files, entries, threshold=250, metadata={"study": "S-1"}).json()
    assert [category(out, c) for c in out["meta"]["category_ids"]] == ["bright"]  # postprocess(threshold=250)
    assert out["meta"]["metadata"] == {"study": "S-1"}  # data_reader(metadata=...)


def test_a_nifti_volume_keeps_its_suffix_for_the_reader(cli_url):
    volume = np.full((3, 8, 8), 700, np.int16)
    images = [entry(k, "ct.nii.gz") for k in range(3)]
    out = invoke(cli_url, [("ct.nii.gz", nifti_gz(volume))], images).json()
    assert [category(out, c) for c in out["meta"]["category_ids"]] == ["bright"]
    assert out["meta"]["stored"] == ["0000.nii.gz"]


def test_a_model_that_names_no_output_strategy_is_served_at_invocations_only(cli_url):
    # SeriesClassifier builds its strategy inside output_formatter and has no `task`: its predictions' shape is
    # unknown until it runs, so neither V2 nor Supervisely is offered (tests/server/test_custom_dialects.py has both).
    assert httpx.get(f"{cli_url}/v2/models/SeriesClassifier").status_code == 404
    assert httpx.post(f"{cli_url}/get_session_info", json={}).status_code == 404


def test_one_image_gets_its_class_on_the_image(cli_url):
    files = dicom_series([50])
    out = invoke(cli_url, files, [entry(0, "slice0.dcm")]).json()
    assert [category(out, c) for c in out["images"][0]["category_ids"]] == ["dark"]
    assert out["meta"]["category_ids"] is None


def test_a_missing_file_is_400_in_the_reference_shape(cli_url):
    files = dicom_series([100, 200])
    entries = [entry(0, "slice0.dcm"), entry(1, "slice1.dcm"), entry(2, "slice9.dcm")]
    response = invoke(cli_url, files, entries)
    assert response.status_code == 400
    assert response.json() == {
        "error": "uploaded files do not match images[].file_name",
        "detail": {"missing_files": ["slice9.dcm"], "unreferenced_files": []},
    }


@pytest.mark.parametrize(
    ("images", "fields", "message"),
    [
        (None, {}, "`images` is required"),
        ([{"id": "a", "index": 0, "file_name": "slice0.dcm"}], {}, "invalid `images`"),
        ([entry(0, "slice0.dcm")], {"tables": []}, "tabular requests"),
    ],
)
def test_bad_requests_are_400_with_error_and_detail(cli_url, images, fields, message):
    data = {k: json.dumps(v) for k, v in fields.items()}
    if images is not None:
        data["images"] = json.dumps(images)
    response = httpx.post(f"{cli_url}/invocations", data=data, files=[("files", dicom_series([1])[0])])
    assert response.status_code == 400 and message in response.json()["error"]
    assert set(response.json()) == {"error", "detail"}
    bad_json = httpx.post(
        f"{cli_url}/invocations",
        data={"images": json.dumps([entry(0, "slice0.dcm")]), "metadata": "{not json"},
        files=[("files", dicom_series([1])[0])],
    )
    assert bad_json.status_code == 400 and "'metadata' is not valid JSON" in bad_json.json()["error"]


def test_input_the_model_refuses_is_400_and_a_crash_is_500_without_traceback(cli_url):
    refused = invoke(cli_url, [("notes.txt", b"hello")], [entry(0, "notes.txt")])
    assert refused.status_code == 400 and "DICOM" in refused.json()["error"]
    files = dicom_series([1, 2])
    crashed = invoke(cli_url, files, [entry(k, n) for k, (n, _) in enumerate(files)], crash=True)
    assert crashed.status_code == 500
    body = crashed.json()
    assert body["error"] == "internal server error" and set(body["detail"]) == {"request_id"}
    assert "fell over" not in crashed.text
    assert invoke(cli_url, files, [entry(k, n) for k, (n, _) in enumerate(files)]).status_code == 200  # still serving


def test_the_seed_python_api_serves_the_same_model():
    script = (
        "import sys\n"
        "from fovea import BaseAiCOCOInputDataModel, BaseAiCOCOOutputDataModel, InferAPP\n"
        f"from {__name__} import SeriesClassifier\n"
        "app = InferAPP(infer_function=SeriesClassifier(), input_data_model=BaseAiCOCOInputDataModel,\n"
        "               output_data_model=BaseAiCOCOOutputDataModel)\n"
        "app.run(port=int(sys.argv[1]))\n"
    )
    with running(lambda port: [sys.executable, "-c", script, str(port)]) as url:
        files = dicom_series([600, 600])
        out = invoke(url, files, [entry(k, n) for k, (n, _) in enumerate(files)]).json()
    assert [category(out, c) for c in out["meta"]["category_ids"]] == ["bright"]


def test_serve_model_help_names_the_class_form():
    result = subprocess.run(
        [sys.executable, "-m", "fovea.cli", "serve-model", "--help"], capture_output=True, text=True, check=True
    )
    assert "package.module:ClassName" in " ".join(result.stdout.split())
    for spec, message in [("nowhere.models:Thing", "cannot import"), ("fovea:BaseInferenceModel", "abstract")]:
        failed = subprocess.run(
            [sys.executable, "-m", "fovea.cli", "serve-model", spec], capture_output=True, text=True
        )
        assert failed.returncode == 2 and message in failed.stderr and "Traceback" not in failed.stderr


def test_limits_answer_413_before_the_model_runs():
    with running(serve_model("--max-request-mb", "0.05", "--max-files", "2")) as url:
        files = dicom_series([1, 2, 3])
        entries = [entry(k, n) for k, (n, _) in enumerate(files)]
        too_many = invoke(url, files, entries)
        assert too_many.status_code == 413 and set(too_many.json()) >= {"error", "detail"}
        big = [("big.dcm", files[0][1] + bytes(100_000))]
        too_large = invoke(url, big, [entry(0, "big.dcm")])
        assert too_large.status_code == 413 and "over the limit" in too_large.json()["error"]
        assert invoke(url, files[:2], entries[:2]).status_code == 200
