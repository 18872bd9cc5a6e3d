"""The web console in real headless Chromium (Debian's `chromium`, driven by Playwright) against `fovea serve`."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.platform.server import fovea_serve, fresh_home

ADMIN_PASSWORD = "console-admin-9"
CHROMIUM_ARGS = [  # as root, offline: no sandbox, and none of Chromium's own network chatter
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(os.environ.get("FOVEA_TEST_ARTIFACTS", Path(__file__).parents[2] / "artifacts")) / "console"


@pytest.fixture(scope="module")
def server(zoo_dir, tmp_path_factory) -> Iterator[str]:
    with fovea_serve(fresh_home(zoo_dir, tmp_path_factory.mktemp("home")), ADMIN_PASSWORD) as url:
        yield url


@pytest.fixture(scope="module")
def api(server) -> Iterator[httpx.Client]:
    """The admin's client of the same server, to check what the console did."""
    token = httpx.post(
        f"{server}/backend/auth/token",
        data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "client_id": "fovea"},
    ).json()["access_token"]
    with httpx.Client(base_url=f"{server}/backend/", headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail("the console tests need Debian's chromium package (apt-get install chromium); .ci/run installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed  # the page fixture keeps a screenshot of a failure
    return report


@pytest.fixture
def page(browser, server, request):
    """A fresh browser tab on the console; JavaScript errors fail the test, a failure leaves a screenshot."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=server, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    if getattr(request.node, "call_failed", False):
        screenshot(tab, f"failed-{request.node.name}")
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def log_in(page, username="admin", password=ADMIN_PASSWORD) -> None:
    page.goto("/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Try it", level=1)).to_be_visible()  # where a log-in lands


def visit(page, route: str, title: str) -> None:
    """Go to a console page and wait until it has drawn: a hash change does not wait for anything by itself."""
    page.goto(f"/{route}")
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()


def screenshot(page, name: str) -> None:
    """Each page as the tests saw it, kept as a test artifact (artifacts/console/, or $FOVEA_TEST_ARTIFACTS)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=page.viewport_size["width"] < 1000)
