"""End-to-end: the console's pages in headless Chromium against a real `fovea serve`, checked through the API."""

import json
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import expect

from fovea.core.formats.masks import rle_encode
from tests.platform.conftest import zip_of
from tests.web.conftest import ADMIN_PASSWORD, log_in, screenshot, visit

# What sticks out on the right: elements wider than the window, outside the scroll boxes that may hold them.
WIDE = """() => [...document.querySelectorAll("body *")]
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth && !el.parentElement.closest(".table-wrap, pre"))
  .map((el) => `${el.tagName}.${el.className}`).slice(0, 8)"""
PAGES = ["#/projects", "#/models", "#/datasets", "#/datasets/1", "#/try", "#/processes", "#/sessions"]


@pytest.fixture(scope="module")
def digits_project(api) -> int:
    return api.post("projects", json={"name": "digits", "task_id": 1}).json()["id"]


@pytest.fixture(scope="module")
def viewer(api) -> str:
    api.post("auth/user", json={"username": "viewer", "email": "viewer@example.com", "password": "Tulip-meadow-42"})
    return "viewer"


def test_login_by_keyboard_wrong_password_then_log_out_revokes(page, api):
    page.goto("/")
    expect(page.get_by_role("navigation", name="Sections")).to_be_hidden()  # nothing to navigate before logging in
    screenshot(page, "login")
    page.keyboard.type("admin")  # the username field has focus on arrival
    page.keyboard.press("Tab")
    page.keyboard.type("not-the-password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password.")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation", name="Sections")).to_be_visible()
    expect(page.locator(".username")).to_have_text("admin")
    token = json.loads(page.evaluate("sessionStorage.getItem('fovea.tokens')"))["access_token"]
    assert api.get("auth/user", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_role("navigation", name="Sections")).to_be_hidden()
    assert api.get("auth/user", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_register_then_log_in_as_the_new_user(page):
    visit(page, "#/register", "Register")
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Password").fill("newcomer-1")
    page.get_by_role("button", name="Register").click()  # refused, and the reason is shown
    expect(page.get_by_role("alert")).to_contain_text("password:")
    page.get_by_label("Password").fill("Quartz-harbour-17")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_text("Account created")).to_be_visible()
    log_in(page, "newcomer", "Quartz-harbour-17")
    expect(page.locator(".username")).to_have_text("newcomer")


def test_try_imagenet_on_the_cat_photo_draws_the_result(page, zoo_dir):
    log_in(page)
    visit(page, "#/try", "Try it")
    page.get_by_label("Weights").select_option(label="EfficientNet-Lite0_ImageNet (EfficientNet-Lite0)")
    page.get_by_label("top_k").fill("3")
    page.get_by_label("Image file").set_input_files(zoo_dir / "samples" / "chelsea.jpg")
    page.get_by_role("button", name="Run").click()
    bars = page.locator(".bars li")
    expect(bars).to_have_count(3, timeout=60_000)  # the top_k setting reached the model
    assert "cat" in bars.first.locator(".name").inner_text()
    canvas = page.locator("canvas.overlay[data-drawn=true]")
    expect(canvas).to_be_visible()
    # The label banner is painted over the photo in the top class's colour, the colour of its bar.
    banner = page.evaluate(
        "() => Array.from(document.querySelector('canvas.overlay').getContext('2d').getImageData(2, 10, 1, 1).data)"
    )
    bar = page.evaluate("() => getComputedStyle(document.querySelector('.bars li .bar span')).backgroundColor")
    assert bar == f"rgb({banner[0]}, {banner[1]}, {banner[2]})"
    assert page.evaluate("() => document.querySelector('canvas.overlay').width") == 451  # the photo's own pixels
    screenshot(page, "try-cat")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download AiCOCO").click()
    aicoco = json.loads(Path(download.value.path()).read_text())
    assert aicoco["images"] and any("cat" in c["name"] for c in aicoco["categories"])
    with page.expect_download() as download:
        page.get_by_role("button", name="Download Canonical JSON").click()
    [prediction] = json.loads(Path(download.value.path()).read_text())["predictions"]
    assert prediction["size"] == [300, 451] and len(prediction["classes"]) == 3


def test_try_without_an_image_says_what_is_missing(page):
    log_in(page)
    visit(page, "#/try", "Try it")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose an image file or paste an image URL first.")


def test_create_a_project(page, api):
    log_in(page)
    visit(page, "#/projects", "Projects")
    page.get_by_label("Name").fill("made-in-console")
    page.get_by_label("Task").select_option(label="Segmentation")
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("tr", has_text="made-in-console")).to_contain_text("Segmentation")
    [made] = [p for p in api.get("projects").json() if p["name"] == "made-in-console"]
    assert made["task_id"] == 2 and made["users"] == [{"username": "admin", "permission": "OWN"}]


def test_inference_on_digits_reaches_finished_with_outputs(page, api, digits_project):
    log_in(page)
    visit(page, "#/processes", "Processes")
    page.get_by_label("Project").select_option(label="digits")
    expect(page.locator(".forms[aria-busy]")).to_have_count(0)
    inference = page.locator("details", has_text="Start an inference on a dataset")
    inference.get_by_label("Weights").select_option(label="LeNet_Digits (LeNet)")
    inference.get_by_label("Dataset").select_option(label="Digits")
    inference.get_by_role("button", name="Start inference").click()
    expect(page).to_have_url(re.compile("#/processes/testing/"))
    expect(page.locator("p .state")).to_have_text("finished", timeout=120_000)
    test_images = len(api.get("datasets/1/images", params={"split": "test"}).json())
    expect(page.get_by_role("heading", name=f"Outputs ({test_images} images)")).to_be_visible()
    expect(page.locator(".log")).to_contain_text(re.compile(r"Test - batch \[(\d+)/\1\]"))  # its last batch
    screenshot(page, "inference-finished")
    process = page.url.rsplit("/", 1)[1]
    [status] = api.get("status", params={"process_id": process}).json()
    assert status["status"]["process_status"] == "finished"
    visit(page, "#/processes", "Processes")
    page.get_by_label("Project").select_option(label="digits")
    expect(page.locator(".forms[aria-busy]")).to_have_count(0)
    expect(page.locator("tr", has_text=process[:8])).to_contain_text("finished")
    screenshot(page, "processes")


def start_training(page, epochs: str) -> None:
    visit(page, "#/processes", "Processes")
    page.get_by_label("Project").select_option(label="digits")
    expect(page.locator(".forms[aria-busy]")).to_have_count(0)
    training = page.locator("details", has_text="Start a training")
    training.locator("summary").click()
    training.get_by_label("Model").select_option(label="LeNet")
    expect(training.locator("fieldset.properties[aria-busy]")).to_have_count(0)
    training.get_by_label("Pretraining").select_option(label="LeNet_RandomInit")
    training.get_by_label("Epochs", exact=True).fill(epochs)
    screenshot(page, "training-form")
    training.get_by_role("button", name="Start training").click()


def test_training_with_a_bad_property_shows_the_reason(page, digits_project):
    log_in(page)
    start_training(page, "many")
    expect(page.get_by_role("alert")).to_contain_text("Invalid value for property 'Epochs'")
    assert "#/processes/training/" not in page.url


def after_the_training_job_ended(api, project_id: int) -> None:
    """Returns once the server's one worker has run an inference queued now, so the job before it has ended."""
    [lenet] = [m for m in api.get("models", params={"task_id": 1}).json() if m["name"] == "LeNet"]
    [weights] = [w for w in api.get("weights", params={"model_id": lenet["id"]}).json() if w["name"] == "LeNet_Digits"]
    [digits] = [d for d in api.get("datasets").json() if d["name"] == "Digits"]
    body = {"modelweights_id": weights["id"], "dataset_id": digits["id"], "project_id": project_id}
    queued = api.post("inference", json=body).json()["process_id"]
    deadline = time.monotonic() + 120
    while api.get("status", params={"process_id": queued}).json()[0]["status"]["process_status"] != "finished":
        assert time.monotonic() < deadline, "the inference queued after the stopped training never finished"
        time.sleep(0.2)


def test_stop_a_training_from_its_page(page, api, digits_project):
    log_in(page)
    start_training(page, "300")
    expect(page).to_have_url(re.compile("#/processes/training/"))
    expect(page.locator(".log")).to_contain_text("Validation - epoch [1/300]", timeout=120_000)
    expect(page.locator("figure.chart circle").first).to_be_visible()  # the first epoch is on the charts
    screenshot(page, "training-running")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("p .state")).to_have_text("stopped")
    process = page.url.rsplit("/", 1)[1]
    lines = len(api.get("status", params={"process_id": process, "full": "true"}).json()[0]["status"]["process_data"])
    after_the_training_job_ended(api, digits_project)
    [status] = api.get("status", params={"process_id": process, "full": "true"}).json()
    assert status["status"]["process_status"] == "stopped"
    assert len(status["status"]["process_data"]) == lines  # nothing ran after the stop
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    screenshot(page, "training-stopped")
    visit(page, "#/processes", "Processes")
    page.get_by_label("Project").select_option(label="digits")
    row = page.locator("tr", has_text=process[:8])
    expect(row).to_contain_text("training")
    expect(row).to_contain_text("stopped")
    row.get_by_role("link").click()  # back to the training's own page
    expect(page.locator("p .state")).to_have_text("stopped")


def test_datasets_show_thumbnails_labels_and_splits(page):
    log_in(page)
    visit(page, "#/datasets", "Datasets")
    page.get_by_role("link", name="Digits").click()
    first = page.locator(".thumb img").first
    expect(first).to_have_attribute("src", re.compile("^blob:"))
    page.wait_for_function("() => document.querySelector('.thumb img').naturalWidth > 0")
    expect(page.locator(".thumb .label").first).to_have_text("0")
    page.get_by_label("Split").select_option("test")
    expect(page.locator(".thumb small").first).to_contain_text("test")
    assert all("test" in text for text in page.locator(".thumb small").all_inner_texts())
    screenshot(page, "dataset-digits")


def test_upload_weights_share_and_make_public(page, api, zoo_dir, viewer):
    log_in(page)
    visit(page, "#/models", "Models and weights")
    page.get_by_text("Upload ONNX weights").click()
    page.get_by_label("Name", exact=True).fill("LeNet_Console")
    page.get_by_label("Model", exact=True).select_option(label="LeNet")
    page.get_by_label("ONNX file").set_input_files(zoo_dir / "digits-lenet.onnx")
    page.get_by_label("Classes").fill(",".join(str(d) for d in range(10)))
    page.get_by_role("button", name="Upload weights").click()
    row = page.locator("tr", has_text="LeNet_Console")
    expect(row).to_contain_text("ready")
    [uploaded] = [w for w in api.get("weights", params={"model_id": 2}).json() if w["name"] == "LeNet_Console"]
    row.get_by_label("Members (user:OWN or user:VIEW)").fill("admin:OWN, viewer:VIEW")
    row.get_by_role("button", name="Share").click()
    expect(page.get_by_text("Sharing saved.")).to_be_visible()
    row = page.locator("tr", has_text="LeNet_Console")
    assert not uploaded["public"]  # uploads start private
    row.get_by_label("LeNet_Console is public").set_checked(True)
    expect(page.get_by_text("LeNet_Console is now public.")).to_be_visible()
    after = api.get(f"weights/{uploaded['id']}").json()
    assert after["public"]
    assert {"username": "viewer", "permission": "VIEW"} in after["users"]
    screenshot(page, "models")
    with page.expect_download() as download:
        row.get_by_role("button", name="Download").click()
    assert Path(download.value.path()).read_bytes() == (zoo_dir / "digits-lenet.onnx").read_bytes()


def test_share_a_project_as_view(page, api, digits_project, viewer):
    log_in(page)
    visit(page, "#/projects", "Projects")
    row = page.locator("tr", has_text="digits")
    row.get_by_label("Members (user:OWN or user:VIEW)").fill("admin:OWN, viewer:VIEW")
    row.get_by_role("button", name="Share").click()
    expect(page.get_by_text("Sharing saved.")).to_be_visible()
    users = api.get(f"projects/{digits_project}").json()["users"]
    assert {"username": "viewer", "permission": "VIEW"} in users
    screenshot(page, "projects")


def test_deploy_a_session_and_use_its_url(page, api):
    log_in(page)
    visit(page, "#/sessions", "Sessions")
    page.get_by_label("Weights").select_option(label="LeNet_Digits (LeNet)")
    page.get_by_label("Name").fill("digits-session")
    page.get_by_role("button", name="Deploy").click()
    row = page.locator("tr", has_text="digits-session")
    expect(row).to_contain_text("LeNet_Digits (LeNet)")
    [deployed] = [s for s in api.get("sessions").json() if s["name"] == "digits-session"]
    [lenet] = [w for w in api.get("weights", params={"model_id": 2}).json() if w["name"] == "LeNet_Digits"]
    assert deployed["modelweights_id"] == lenet["id"]
    url = row.locator(".url code").inner_text()
    assert url.startswith("http://127.0.0.1:") and "/net/" in url
    for _ in range(100):
        if httpx.get(f"{url}/ping").status_code == 204:  # FLaVor's health check, through the copied URL
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the deployed session never answered /ping")
    snippets = page.locator(".snippet code").all_inner_texts()
    assert len(snippets) == 4 and all(url.removeprefix("http://") in s for s in snippets)
    row.get_by_role("button", name="Copy URL").click()
    assert page.evaluate("navigator.clipboard.readText()") == url
    screenshot(page, "sessions")
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("tr", has_text="digits-session")).to_have_count(0)
    assert all(s["name"] != "digits-session" for s in api.get("sessions").json())


@pytest.mark.parametrize("width, height", [(390, 844), (1280, 800)])
def test_every_page_fits_the_screen(browser, server, width, height):
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=server)
    page = context.new_page()
    try:
        log_in(page)
        for route in PAGES:
            page.goto(f"/{route}")
            page.locator("main h1").first.wait_for()
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{route} is {overflow} px wider than a {width} px screen: {page.evaluate(WIDE)}"
            screenshot(page, f"{route[2:].replace('/', '-')}-{width}")
    finally:
        context.close()


def test_dataset_upload_from_the_console(page, api, zoo_dir, tmp_path):
    root = zoo_dir / "digits"
    archive = tmp_path / "digits.zip"
    files = {f"digits/{p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()}
    archive.write_bytes(zip_of(files))
    log_in(page)
    visit(page, "#/datasets", "Datasets")
    page.get_by_text("Upload a dataset").click()
    page.get_by_label("Name", exact=True).fill("Digits again")
    page.get_by_label("Task").select_option(label="Classification")
    page.get_by_label("Zip archive").set_input_files(archive)
    page.get_by_label("Colour type").select_option("GRAY")
    page.get_by_role("button", name="Upload dataset").click()
    expect(page.locator("tr", has_text="Digits again")).to_contain_text("10")  # its ten classes
    [uploaded] = [d for d in api.get("datasets").json() if d["name"] == "Digits again"]
    assert uploaded["ctype"] == "GRAY" and len(api.get(f"datasets/{uploaded['id']}/images").json()) == 1797


def test_masks_are_decoded_as_the_server_encodes_them(page):
    """The console reads the canonical RLE (column-major runs) back into the mask the server encoded."""
    rng = np.random.default_rng(0)
    mask = rng.random((7, 5)) > 0.6
    mask[0, 0] = True  # a mask that starts inside: its RLE opens with an empty run
    log_in(page)
    decoded = page.evaluate(
        "async (rle) => Array.from((await import('/console/draw.js')).decodeRle(rle))", rle_encode(mask)
    )
    np.testing.assert_array_equal(np.array(decoded, bool).reshape(mask.shape), mask)
