"""`/openapi.json` describes the real back-end API: every operation's answer, and every body it reads."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fovea.platform.bootstrap import bootstrap
from fovea.platform.config import PlatformSettings
from fovea.server.backend.app import create_backend_app

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document(tmp_path_factory):
    settings = PlatformSettings(home=tmp_path_factory.mktemp("home"), admin_password="openapi-secret-1")
    db, _ = bootstrap(settings)
    try:
        with TestClient(create_backend_app(settings, db)) as client:
            return client.get("/openapi.json").json()
    finally:
        db.dispose()


def operations(document):
    for path, item in document["paths"].items():
        if path.startswith("/backend/"):
            for method in METHODS:
                if method in item:
                    yield f"{method.upper()} {path}", item[method]


def resolve(document, schema):
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_operation_says_what_it_answers(document):
    missing = []
    for name, operation in operations(document):
        success = next((r for code, r in operation["responses"].items() if code.startswith("2")), None)
        if success is None:
            missing.append(f"{name}: no success response")
        elif "204" in operation["responses"]:
            continue  # no content, by definition
        else:
            content = success.get("content", {})
            schemas = [resolve(document, c.get("schema", {})) for c in content.values()]
            if not schemas or any(not s for s in schemas):
                missing.append(name)
    assert not missing, "operations without a response schema:\n" + "\n".join(missing)


def test_every_operation_that_reads_a_body_describes_it(document):
    writers = [(name, op) for name, op in operations(document) if name.split()[0] in ("POST", "PUT", "PATCH")]
    assert len(writers) > 20
    undescribed = [name for name, operation in writers if not operation.get("requestBody", {}).get("content")]
    assert not undescribed, undescribed


def test_invalid_input_is_documented_as_the_400_it_answers(document):
    """The app answers invalid input (a malformed id, a bad body) with 400 and its error body (backend-api.md §1.1),
    never FastAPI's 422: the document must say so for every operation that reads parameters or a body."""
    with_422 = [name for name, operation in operations(document) if "422" in operation["responses"]]
    assert not with_422, with_422
    readers = [(name, op) for name, op in operations(document) if op.get("parameters") or op.get("requestBody")]
    assert len(readers) > 40
    without_400 = [name for name, operation in readers if "400" not in operation["responses"]]
    assert not without_400, without_400
    for name, operation in readers:
        body = resolve(document, operation["responses"]["400"]["content"]["application/json"]["schema"])
        assert body["required"] == ["error"] and body["properties"]["error"]["type"] == "string", name
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_the_weights_item_is_the_reference_shape(document):
    operation = document["paths"]["/backend/weights/{weights_id}"]["get"]
    schema = resolve(document, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert list(schema["properties"]) == [
        "id", "name", "model_id", "dataset_id", "pretrained_on", "public", "users", "process_id", "layer_to_remove",
        "is_active", "classes", "settings",
    ]  # fmt: skip
    users = resolve(document, schema["properties"]["users"]["items"])
    assert users["properties"]["permission"]["enum"] == ["OWN", "VIEW"]
