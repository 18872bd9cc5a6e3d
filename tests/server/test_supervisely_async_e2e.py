"""Supervisely's asynchronous id inference and `get_status` against a real `fovea serve-model` process
(reference/supervisely-session-protocol.md §3, §7 and §10).

In a standalone session, image ids name the files of `--media` in name order: 0 is chelsea.jpg (a cat), 1 is
coffee.jpg (an espresso). The session is the demo ImageNet classifier.
"""

import re
import time

import httpx
import pytest

CHELSEA, COFFEE = 0, 1
SIZES = {CHELSEA: {"height": 300, "width": 451}, COFFEE: {"height": 400, "width": 600}}
NAMES = {CHELSEA: "chelsea.jpg", COFFEE: "coffee.jpg"}
TERMINAL_FLAGS = ("finished", "result", "has_result", "final_result")


def post(url, endpoint, **state):
    body = {"state": {"settings": {}, **state}, "context": {}, "api_token": None}
    return httpx.post(f"{url}/{endpoint}", json=body, timeout=60)


def start(url, **state):
    started = post(url, "inference_batch_ids_async", **state)
    assert started.status_code == 200, started.text
    assert started.json()["message"] == "Scheduled inference task."
    request_uuid = started.json()["inference_request_uuid"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_uuid)
    return request_uuid


def progress(url, request_uuid):
    response = post(url, "get_inference_progress", inference_request_uuid=request_uuid)
    assert response.status_code == 200, response.text
    return response.json()


def until_terminal(url, request_uuid, deadline_s=120):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        state = progress(url, request_uuid)
        if not state["is_inferring"]:
            return state
        time.sleep(0.05)
    raise AssertionError(f"request {request_uuid} did not end in {deadline_s} s")


def pop(url, request_uuid):
    response = post(url, "pop_inference_results", inference_request_uuid=request_uuid)
    assert response.status_code == 200, response.text
    return response.json()


def top_tag(result):
    return result["annotation"]["tags"][0]["name"]


def test_batch_ids_async_delivers_each_result_once_in_input_order(imagenet_url):
    ids = [COFFEE, CHELSEA, CHELSEA]  # not a palindrome: the order is seen
    request_uuid = start(imagenet_url, images_ids=ids, output_project_id=None, batch_size=None)
    # The client's loop (§7.5): pop until a response says the request no longer infers; every result must have
    # been queued before that (§7.2 rule 3).
    results, deadline = [], time.monotonic() + 120
    while True:
        popped = pop(imagenet_url, request_uuid)
        assert isinstance(popped["pending_results"], list) and popped["exception"] is None
        results += popped["pending_results"]
        if not popped["is_inferring"]:
            break
        assert time.monotonic() < deadline, "the request did not end"
        time.sleep(0.05)
    assert [r["image_id"] for r in results] == ids
    assert [r["name"] for r in results] == [r["image_name"] for r in results] == [NAMES[i] for i in ids]
    assert [r["annotation"]["size"] for r in results] == [SIZES[i] for i in ids]
    coffee, cat, cat_again = map(top_tag, results)
    assert coffee == "espresso" and "cat" in cat and cat_again == cat
    assert all(r["annotation"]["objects"] == [] for r in results)

    done = progress(imagenet_url, request_uuid)
    assert done["uuid"] == request_uuid and done["stage"] == "Finished"
    assert done["progress"] == {"current": 3, "total": 3} and done["pending_results"] == 0
    assert all(done[flag] is True for flag in TERMINAL_FLAGS)
    assert done["stopped"] is False and done["cancel_inference"] is False and done["paused"] is False
    assert pop(imagenet_url, request_uuid)["pending_results"] == []  # delivered exactly once
    assert post(imagenet_url, "get_inference_result", inference_request_uuid=request_uuid).json() is None
    stop = post(imagenet_url, "stop_inference", inference_request_uuid=request_uuid)  # finished: still 200
    assert stop.status_code == 200 and stop.json() == {"message": "Inference will be stopped.", "success": True}
    assert progress(imagenet_url, request_uuid)["stage"] == "Finished"
    cleared = post(imagenet_url, "clear_inference_request", inference_request_uuid=request_uuid)
    assert cleared.status_code == 200 and cleared.json() == {"success": True}


@pytest.mark.parametrize("alias", ["batch_ids", "image_ids", "imageIds"])
def test_batch_ids_async_reads_every_id_alias(imagenet_url, alias):
    request_uuid = start(imagenet_url, **{alias: [CHELSEA]})
    assert until_terminal(imagenet_url, request_uuid)["stage"] == "Finished"
    [result] = pop(imagenet_url, request_uuid)["pending_results"]
    assert result["image_id"] == CHELSEA and "cat" in top_tag(result)


def test_stop_inference_cancels_between_batches(imagenet_url):
    ids = [CHELSEA, COFFEE] * 100  # 25 batches of serve-model's 8: far more than can run before the stop
    request_uuid = start(imagenet_url, images_ids=ids)
    stop = post(imagenet_url, "stop_inference", inference_request_uuid=request_uuid)
    assert stop.status_code == 200 and stop.json() == {"message": "Inference will be stopped.", "success": True}
    done = until_terminal(imagenet_url, request_uuid)
    assert done["stage"] == "Cancelled" and done["exception"] is None
    assert done["stopped"] is True and done["cancel_inference"] is True
    assert all(done[flag] is True for flag in TERMINAL_FLAGS)
    assert done["progress"]["total"] == len(ids) and done["progress"]["current"] < len(ids)
    # What was produced before the stop is still delivered, in order, and nothing more.
    delivered = pop(imagenet_url, request_uuid)["pending_results"]
    assert len(delivered) == done["progress"]["current"]
    assert [r["image_id"] for r in delivered] == ids[: len(delivered)]


@pytest.mark.parametrize(
    ("state", "status", "message"),
    [
        ({"images_ids": [CHELSEA, 99]}, 404, "99"),
        ({}, 400, "images_ids is required"),
        ({"images_ids": ["0"]}, 400, "integer ids"),
        ({"images_ids": [CHELSEA], "output_project_id": 7}, 400, "not supported"),
    ],
)
def test_batch_ids_async_refuses_bad_requests_before_creating_one(imagenet_url, state, status, message):
    response = post(imagenet_url, "inference_batch_ids_async", **state)
    assert response.status_code == status, response.text
    assert response.json()["success"] is False and message in response.json()["message"]
    assert "inference_request_uuid" not in response.json()


def test_uuids_unknown_to_the_session(imagenet_url):
    unknown = "0" * 32
    missing = post(imagenet_url, "get_inference_progress", inference_request_uuid=unknown)
    assert missing.status_code == 404 and missing.json()["message"] == "Error: 'inference_request_uuid' is not found."
    assert post(imagenet_url, "pop_inference_results", inference_request_uuid=unknown).status_code == 404
    assert post(imagenet_url, "get_inference_result", inference_request_uuid=unknown).json() is None
    stop = post(imagenet_url, "stop_inference", inference_request_uuid=unknown)
    assert stop.status_code == 200 and stop.json()["success"] is True


@pytest.mark.parametrize("body", [{}, {"state": {"settings": {"top_k": 1}}, "context": {}, "api_token": None}])
def test_get_status_of_a_deployed_session(imagenet_url, body):
    response = httpx.post(f"{imagenet_url}/get_status", json=body, timeout=60)
    assert response.status_code == 200, response.text
    status = response.json()
    assert set(status) == {"is_deployed", "progress", "gpu_memory", "ram_memory"}
    assert status["is_deployed"] is True
    assert status["progress"] == {"message": "Ready", "current": 0, "total": 1}
    for memory in (status["gpu_memory"], status["ram_memory"]):  # bytes, or null where unknown
        assert set(memory) == {"allocated", "total"}
        assert all(value is None or (isinstance(value, int) and value >= 0) for value in memory.values())
