"""Which exceptions become which HTTP answers: Fovea's own map to client errors, anything else is a bare 500."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from fovea.errors import Conflict, Forbidden, InputError, NotFound, Unauthenticated
from fovea.platform.config import PlatformSettings
from fovea.platform.db import Database
from fovea.platform.models import Process
from fovea.server.errors import classify
from tests.platform.server import fovea_serve, fresh_home

ADMIN_PASSWORD = "admin-secret-42"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (NotFound("no such dataset"), 404),
        (Forbidden("needs the owner"), 403),
        (Conflict("in use"), 409),
        (Unauthenticated("token expired"), 401),
        (InputError("bad value"), 400),
    ],
)
def test_fovea_errors_map_to_their_status_and_keep_their_message(exc, status):
    assert classify(exc)[:2] == (status, str(exc))


@pytest.mark.parametrize(
    "exc",
    [KeyError("secret_key"), IndexError("list index out of range"), PermissionError(13, "Permission denied", "/x")],
)
def test_builtin_errors_are_bugs_answered_with_a_bare_500(exc):
    status, message, detail, headers = classify(exc)
    assert (status, message, headers) == (500, "internal server error", {})
    assert set(detail) == {"request_id"}  # the log has the traceback under this id; the client gets nothing else


def _finished_inference(home, owner_id: int, project_id: int) -> str:
    """A finished inference process row, as a worker leaves it (its outputs file is written by the test)."""
    settings = PlatformSettings(home=home, admin_password=ADMIN_PASSWORD)
    db = Database(settings.db_url)
    process_id, now = str(uuid.uuid4()), datetime.now(UTC).replace(tzinfo=None)
    try:
        with db.transaction() as session:
            session.add(
                Process(
                    id=process_id,
                    process_type="testing",
                    project_id=project_id,
                    user_id=owner_id,
                    state="finished",
                    created=now,
                    updated=now,
                )
            )
    finally:
        db.dispose()
    return process_id


def test_a_bug_in_a_route_is_a_500_and_a_missing_record_still_a_404(zoo_dir, tmp_path):
    home = fresh_home(zoo_dir, tmp_path / "home")
    with fovea_serve(home, ADMIN_PASSWORD) as url, httpx.Client(base_url=url, timeout=30) as client:
        token = client.post(
            "/backend/auth/token/",
            data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "client_id": "fovea"},
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        project = client.post("/backend/projects", json={"name": "errors", "task_id": 1})
        assert project.status_code in (200, 201), project.text
        me = client.get("/backend/auth/user").json()
        process_id = _finished_inference(home, me["id"], project.json()["id"])
        # An outputs file missing a key the route reads: the route's `stored["predictions"]` is a genuine KeyError.
        outputs = home / "storage" / "processes" / process_id
        outputs.mkdir(parents=True)
        (outputs / "outputs.json").write_text(json.dumps({"outputs": []}))

        bug = client.get("/backend/output", params={"process_id": process_id, "format": "json"})
        assert bug.status_code == 500, bug.text
        assert bug.json()["error"] == "internal server error"
        assert "predictions" not in bug.text and "KeyError" not in bug.text and "Traceback" not in bug.text

        missing = client.get(f"/backend/media/{uuid.uuid4()}/0.png")
        assert missing.status_code == 404 and missing.json()["error"] == "Process not found"
        assert client.get("/backend/output", params={"process_id": process_id}).json() == {"outputs": []}
