"""Hostile input on the back-end: deep JSON, integers past 64 bits, and a schema fuzzer over /openapi.json."""

import json

import pytest

from tests.platform.conftest import bearer, login

HUGE = 10**30
DIGITS_23 = "1" * 23


def test_json_nested_5000_deep_is_a_400(backend):
    headers = bearer(login(backend))
    for path in ("/backend/projects", "/backend/auth/user", "/backend/inferenceSingle"):
        response = backend.post(path, content=b"[" * 5000 + b"]" * 5000, headers=headers)
        assert response.status_code == 400, (path, response.text)
        assert "nested too deeply" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        f"/backend/projects/{DIGITS_23}",
        f"/backend/weights/{DIGITS_23}",
        f"/backend/properties/{DIGITS_23}",
        f"/backend/tasks/{DIGITS_23}",
        f"/backend/models/{DIGITS_23}",
        f"/backend/datasets/{DIGITS_23}",
        f"/backend/datasets/{DIGITS_23}/images",
        f"/backend/sessions/{DIGITS_23}",
        f"/backend/auth/users/{DIGITS_23}",
        f"/backend/trainingSettings?training_id={DIGITS_23}",
        f"/backend/weights?model_id={DIGITS_23}",
        f"/backend/datasets?task_id={DIGITS_23}",
        f"/backend/inferenceSingle?project_id={DIGITS_23}",
        f"/backend/weightsDownload?modelweights_id={DIGITS_23}",
        f"/backend/projects/{2**31}",  # ids are 32-bit columns on PostgreSQL
        f"/backend/models?task_id={2**31}",
    ],
)
def test_ids_past_64_bits_in_paths_and_queries_are_refused(backend, path):
    response = backend.get(path, headers=bearer(login(backend)))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid request"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/backend/projects", {"name": "p", "task_id": HUGE}),
        ("POST", "/backend/models", {"name": "m", "task_id": HUGE}),
        ("POST", "/backend/sessions", {"modelweights_id": HUGE}),
        ("POST", "/backend/inferenceSingle", {"project_id": HUGE, "modelweights_id": 1, "image_url": "x"}),
        ("POST", "/backend/train", {"project_id": 1, "modelweights_id": HUGE}),
        ("POST", "/backend/allowedProperties", {"property_id": HUGE, "model_id": 1, "allowed_value": "1"}),
    ],
)
def test_integers_past_64_bits_in_bodies_are_a_400(backend, method, path, body):
    response = backend.request(method, path, json=body, headers=bearer(login(backend)))
    assert response.status_code == 400, response.text
    assert "out of range" in response.json()["error"]


@pytest.mark.parametrize("path", ["/backend/projects", "/backend/models"])
def test_an_id_past_32_bits_in_a_body_is_a_400(backend, path):
    response = backend.post(path, json={"name": "x", "task_id": 2**40}, headers=bearer(login(backend)))
    assert response.status_code == 400, response.text


def test_a_form_id_past_64_bits_is_a_400(backend):
    response = backend.post(
        "/backend/datasets", data={"name": "d", "task_id": str(HUGE)}, files={"dataset_data": ("d.zip", b"PK")},
        headers=bearer(login(backend)),
    )  # fmt: skip
    assert response.status_code == 400, response.text
    assert "out of range" in response.json()["error"]


def parts(files):
    """schemathesis's multipart parts as bytes a client can send: it generates numbers and lone surrogates too."""
    if not files:
        return None
    encoded = []
    for name, (filename, content, *rest) in files:
        text = content if isinstance(content, (bytes, str)) else json.dumps(content)
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        encoded.append((name.encode("utf-8", "surrogatepass").decode("utf-8", "replace"), (filename, data, *rest)))
    return encoded


FUZZ_EXAMPLES = 8  # per operation and generation mode: enough to hit the edges, with ~50 operations under a minute


def test_schema_fuzzer_finds_no_server_errors(backend):
    """schemathesis generates valid and invalid paths and queries for every operation, called as the admin."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    headers = bearer(login(backend))
    schema = schemathesis.openapi.from_dict(backend.get("/openapi.json").json())
    failures = []

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=FUZZ_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            @given(case=operation.as_strategy(mode))
            def call(case):
                kwargs = case.as_transport_kwargs(base_url="http://testserver")
                data = kwargs.get("data")  # raw bytes (a multipart body, its boundary in the headers), or form fields
                form = data if isinstance(data, dict) else None
                kind = {k: v for k, v in kwargs.get("headers", {}).items() if k.lower() == "content-type"}
                response = backend.request(
                    kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers={**kind, **headers},
                    content=None if form is not None else data, data=form, files=parts(kwargs.get("files")),
                    json=kwargs.get("json"),
                )  # fmt: skip
                if response.status_code >= 500:
                    failures.append(f"{kwargs['method']} {response.url} -> {response.status_code} {response.text}")

            try:
                call()
            except Unsatisfiable:  # an operation without parameters has no invalid input to send
                assert mode is GenerationMode.NEGATIVE
    assert not failures, "\n".join(failures)
