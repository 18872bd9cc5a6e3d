"""The process, training, session and explain routes describe their bodies and answers in the OpenAPI document,
and their bodies are checked as before: ids first, each other field at its step with its own message."""

from tests.platform.conftest import bearer, login

JSON = "application/json"


def _operation(doc, method, path):
    return doc["paths"][f"/backend/{path}"][method]


def test_openapi_shows_request_and_response_schemas(backend):
    doc = backend.get("/openapi.json").json()
    bodies = {
        ("post", "inference"): {"project_id", "modelweights_id", "dataset_id", "properties", "settings"},
        ("post", "inferenceSingle"): {"project_id", "modelweights_id", "image_url", "image_data"},
        ("post", "train"): {"project_id", "dataset_id", "weights_id", "properties", "task_manager"},
        ("post", "stopProcess"): {"process_id"},
        ("post", "sessions"): {"modelweights_id", "settings", "name", "dataset_id"},
        ("patch", "sessions/{session_id}"): {"settings"},
        ("post", "explain"): {"project_id", "modelweights_id", "image_url", "image_data", "class_index"},
    }
    for (method, path), fields in bodies.items():
        schema = _operation(doc, method, path)["requestBody"]["content"][JSON]["schema"]
        assert fields <= set(schema["properties"]), (path, schema)
    properties = _operation(doc, "post", "train")["requestBody"]["content"][JSON]["schema"]["properties"]["properties"]
    assert properties["anyOf"][0]["items"]["required"] == ["value"]  # each override's shape, inlined
    answers = {
        ("post", "inference", "201"): {"result", "process_id"},
        ("get", "inference", "200"): None,
        ("post", "train", "201"): {"result", "process_id", "weight_id"},
        ("get", "trainings", "200"): None,
        ("get", "trainingSettings", "200"): None,
        ("get", "status", "200"): None,
        ("get", "output", "200"): None,
        ("post", "stopProcess", "200"): None,
        ("get", "sessions/{session_id}", "200"): None,
    }
    for (method, path, status), fields in answers.items():
        schema = _operation(doc, method, path)["responses"][status]["content"][JSON]["schema"]
        assert schema, (path, status)
        if fields:
            name = schema["$ref"].rsplit("/", 1)[-1]
            assert fields <= set(doc["components"]["schemas"][name]["properties"]), (path, name)
    overlay = _operation(doc, "post", "explain")["responses"]["200"]["content"]
    assert "image/png" in overlay


def test_body_ids_are_checked_first_with_the_documented_error(backend):
    headers = bearer(login(backend))
    for path, body, key in [
        ("train", {"project_id": "1", "dataset_id": 1, "weights_id": 1}, "project_id"),
        ("train", {"project_id": 1, "dataset_id": 1, "weights_id": True}, "weights_id"),
        ("inference", {"project_id": 1, "modelweights_id": 1.0, "dataset_id": 1}, "modelweights_id"),
        ("inferenceSingle", {"project_id": 1}, "modelweights_id"),
    ]:
        response = backend.post(f"/backend/{path}", json=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json() == {
            "error": f"{key} is required and must be an integer",
            "detail": {"fields": {key: ["This field is required."]}},
        }
    stop = backend.post("/backend/stopProcess", json={"process_id": "not-a-uuid"}, headers=headers)
    assert stop.status_code == 400 and "UUID" in stop.json()["error"]
