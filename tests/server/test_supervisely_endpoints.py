"""Supervisely endpoints the Session SDK does not reach (ModelAPI's), over plain HTTP."""

import json
import time

import httpx

from tests.media import write_video


def post(url, endpoint, **state):
    return httpx.post(f"{url}/{endpoint}", json={"state": state, "context": {}, "api_token": "secret"}, timeout=60)


def wait_finished(url, request_uuid):
    for _ in range(200):
        progress = post(url, "get_inference_progress", inference_request_uuid=request_uuid).json()
        if progress["finished"]:
            return progress
        time.sleep(0.05)
    raise AssertionError("the request did not finish")


def test_batch_async_upload_and_status(imagenet_url, zoo_dir):
    files = [
        ("files", (f"image_{i}.jpg", (zoo_dir / "samples" / n).read_bytes()))
        for i, n in enumerate(["chelsea.jpg", "coffee.jpg"])
    ]
    started = httpx.post(
        f"{imagenet_url}/inference_batch_async", files=files, data={"state": json.dumps({"settings": {}})}
    )
    assert started.status_code == 200 and started.json()["message"] == "Scheduled inference task."
    request_uuid = started.json()["inference_request_uuid"]
    assert len(request_uuid) == 32
    wait_finished(imagenet_url, request_uuid)
    status = post(imagenet_url, "get_inference_status", inference_request_uuid=request_uuid).json()
    assert "pending_results" not in status and status["gpu_memory"] == {"allocated": None, "total": None}
    popped = post(imagenet_url, "pop_inference_results", inference_request_uuid=request_uuid).json()
    assert [r["name"] for r in popped["pending_results"]] == ["image_0.jpg", "image_1.jpg"]
    assert popped["pending_results"][1]["annotation"]["tags"][0]["name"] == "espresso"
    assert post(imagenet_url, "get_inference_result", inference_request_uuid=request_uuid).json() is None
    assert post(imagenet_url, "clear_inference_request", inference_request_uuid=request_uuid).json() == {
        "success": True
    }


def test_a_bad_upload_is_refused_before_a_request_exists(imagenet_url):
    files = [("files", ("image_0.png", b"/tmp/some/path.jpg"))]  # ModelAPI's known bug: a path string as content
    response = httpx.post(f"{imagenet_url}/inference_batch_async", files=files)
    assert response.status_code == 400 and "image_0.png" in response.json()["message"]


def test_video_upload_async_with_every_alias(imagenet_url, tmp_path):
    video = write_video(tmp_path / "v.mkv", 20).read_bytes()
    state = {"start_frame": 10, "num_frames": 4, "direction": "backward", "stride": 2}
    started = httpx.post(
        f"{imagenet_url}/inference_video_async", files=[("files", ("v.mkv", video))], data={"state": json.dumps(state)}
    ).json()
    request_uuid = started["inference_request_uuid"]
    done = wait_finished(imagenet_url, request_uuid)
    assert done["progress"] == {"current": 2, "total": 2}
    popped = post(imagenet_url, "pop_inference_results", inference_request_uuid=request_uuid).json()
    assert [r["frame_index"] for r in popped["pending_results"]] == [10, 8]
    assert post(imagenet_url, "get_inference_result", inference_request_uuid=request_uuid).json() == {"video_ann": None}


def test_uuid_errors_stop_idempotence_and_unsupported(imagenet_url):
    missing = post(imagenet_url, "get_inference_progress", inference_request_uuid="0" * 32)
    assert missing.status_code == 404 and missing.json()["message"] == "Error: 'inference_request_uuid' is not found."
    required = post(imagenet_url, "pop_inference_results")
    assert required.status_code == 400 and required.json()["message"] == "Error: 'inference_request_uuid' is required."
    stop = post(imagenet_url, "stop_inference", inference_request_uuid="unknown")
    assert stop.status_code == 200 and stop.json() == {"message": "Inference will be stopped.", "success": True}
    assert post(imagenet_url, "get_preparing_progress", inference_request_uuid="x").json()["status"]
    for path in ("/is_ready", "//is_ready", "/is_ready/"):
        assert httpx.get(f"{imagenet_url}{path}").json() == {"status": "ready"}
    assert httpx.post(f"{imagenet_url}/is_ready", json={}).json() == {"status": "ready"}
    unsupported = post(imagenet_url, "run_speedtest")
    assert unsupported.status_code == 501 and unsupported.json()["success"] is False
    deploy = post(imagenet_url, "get_deploy_info").json()
    assert len(deploy) == 12 and deploy["runtime"] == "onnxruntime"
    upload = post(imagenet_url, "inference_image_id", image_id=0, upload=True)
    assert upload.status_code == 400
    bad_video = post(imagenet_url, "inference_video_id_async", videoId=0, startFrameIndex=999)
    assert bad_video.status_code == 400 and "outside the video" in bad_video.json()["message"]
    tracker = post(imagenet_url, "inference_video_id", videoId=0, tracker="botsort")
    assert tracker.status_code == 400


def test_batch_async_decodes_lazily_one_batch_at_a_time(imagenet_url, zoo_dir):
    """A file that only fails when decoded is not decoded up front: the batches before it are predicted and
    the request then fails naming it (serve-model's default batch is 8 images)."""
    chelsea = (zoo_dir / "samples" / "chelsea.jpg").read_bytes()
    files = [("files", (f"image_{i}.jpg", chelsea)) for i in range(8)]
    files.append(("files", ("broken.jpg", chelsea[: len(chelsea) // 3])))  # a JPEG, cut short
    started = httpx.post(f"{imagenet_url}/inference_batch_async", files=files, timeout=60)
    assert started.status_code == 200, started.text
    done = wait_finished(imagenet_url, started.json()["inference_request_uuid"])
    assert done["progress"] == {"current": 8, "total": 9}
    assert done["exception"]["type"] == "InputError" and "broken.jpg" in done["exception"]["message"]


DEEP = "[" * 5000 + "]" * 5000


def test_deep_json_is_400(imagenet_url):
    body = httpx.post(f"{imagenet_url}/get_inference_progress", content=DEEP, timeout=60)
    assert body.status_code == 400 and body.json()["message"] == "request body is JSON nested too deeply"
    form = httpx.post(
        f"{imagenet_url}/inference_batch_async", files=[("files", ("a.jpg", b"x"))], data={"state": DEEP}, timeout=60
    )
    assert form.status_code == 400 and form.json()["message"] == "form field 'state' is JSON nested too deeply"


def test_smart_cache_endpoints_are_501(imagenet_url):
    for path in ("/smart_cache", "/smart_cache_files", "/smart_cache/get"):
        response = post(imagenet_url, path.lstrip("/"))
        assert response.status_code == 501, path
        assert response.json()["success"] is False and "not supported" in response.json()["message"]


def batched_rows(url):
    """Rows the session's batcher has run so far (the `fovea_batch_size` histogram's sum)."""
    text = httpx.get(f"{url}/metrics", timeout=60).text
    [line] = [line for line in text.splitlines() if line.startswith("fovea_batch_size_sum")]
    return float(line.split()[-1])


def test_async_batches_and_videos_go_through_the_sessions_batcher(imagenet_url, zoo_dir, tmp_path):
    """Their network runs share the cores with every other request's instead of running beside the batcher."""
    chelsea = (zoo_dir / "samples" / "chelsea.jpg").read_bytes()
    before = batched_rows(imagenet_url)
    files = [("files", (f"image_{i}.jpg", chelsea)) for i in range(3)]
    started = httpx.post(f"{imagenet_url}/inference_batch_async", files=files, timeout=60)
    assert started.status_code == 200, started.text
    assert wait_finished(imagenet_url, started.json()["inference_request_uuid"])["progress"]["current"] == 3
    assert batched_rows(imagenet_url) == before + 3

    video = write_video(tmp_path / "v.mkv", 20).read_bytes()
    state = {"start_frame": 0, "num_frames": 5}
    started = httpx.post(
        f"{imagenet_url}/inference_video_async", files=[("files", ("v.mkv", video))], data={"state": json.dumps(state)}
    )
    assert started.status_code == 200, started.text
    assert wait_finished(imagenet_url, started.json()["inference_request_uuid"])["progress"]["current"] == 5
    assert batched_rows(imagenet_url) == before + 3 + 5


def test_preparing_progress_is_the_requests_own(imagenet_url, tmp_path):
    video = write_video(tmp_path / "v.mkv", 20).read_bytes()
    state = {"start_frame": 2, "num_frames": 6}
    started = httpx.post(
        f"{imagenet_url}/inference_video_async", files=[("files", ("v.mkv", video))], data={"state": json.dumps(state)}
    )
    request_uuid = started.json()["inference_request_uuid"]
    wait_finished(imagenet_url, request_uuid)
    preparing = post(imagenet_url, "get_preparing_progress", inference_request_uuid=request_uuid).json()
    assert preparing == {"status": "Finished", "current": 6, "total": 6, "is_size": False}


def test_status_reports_this_processes_memory_and_the_cards_precision(imagenet_url):
    status = post(imagenet_url, "get_status").json()
    ram = status["ram_memory"]
    # The server holds an ImageNet network and ONNX Runtime: tens of MiB at least, and less than the machine.
    assert isinstance(ram["allocated"], int) and 32 * 2**20 < ram["allocated"] < ram["total"]
    assert status["gpu_memory"] == {"allocated": None, "total": None}  # a CPU session has no GPU figures
    assert post(imagenet_url, "get_deploy_info").json()["model_precision"] == "fp32"
    running = post(imagenet_url, "get_inference_status", inference_request_uuid="0" * 32)
    assert running.status_code == 404
