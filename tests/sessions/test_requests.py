"""Asynchronous requests: the Supervisely progress rules (§7), pop, stop, clear, backpressure, expiry."""

import threading
import time

import pytest

from fovea.sessions import requests as rq
from fovea.sessions.requests import MAX_PENDING, AsyncRequest, InMemoryRequestStore, RequestStore, Stopped

KEYS = {
    "uuid", "stage", "progress", "pending_results", "is_inferring", "finished", "stopped", "cancel_inference",
    "paused", "result", "has_result", "final_result", "exception", "preparing_progress", "created_at", "updated_at",
}  # fmt: skip


def without_times(progress: dict) -> dict:
    assert set(progress) == KEYS
    assert progress["created_at"] <= progress["updated_at"] <= time.time()
    return {k: v for k, v in progress.items() if k not in ("uuid", "created_at", "updated_at")}


def test_the_progress_object_through_a_lifecycle():
    job = AsyncRequest("video")
    assert len(job.uuid) == 32 and job.uuid == job.uuid.lower() and int(job.uuid, 16) >= 0
    assert job.uuid != AsyncRequest().uuid
    assert without_times(job.progress_dict()) == {
        "stage": "Preparing model for inference...",
        "progress": {"current": 0, "total": 1},  # rule 1: total 1 means "not started"
        "pending_results": 0,
        "is_inferring": True,
        "finished": False,
        "stopped": False,
        "cancel_inference": False,
        "paused": False,
        "result": False,
        "has_result": False,
        "final_result": False,
        "exception": None,
        "preparing_progress": {
            "status": "Preparing model for inference...",
            "current": 0,
            "total": 1,
            "is_size": False,
        },
    }
    job.preparing(2048, 4096, is_size=True)  # e.g. bytes of an upload
    assert job.progress_dict()["preparing_progress"]["current"] == 2048
    assert job.progress_dict()["preparing_progress"]["is_size"] is True
    job.start(10)
    job.push({"frame": 0})
    job.push({"frame": 1})
    assert without_times(job.progress_dict()) == {
        "stage": "Running inference...",
        "progress": {"current": 2, "total": 10},
        "pending_results": 2,  # rule 2: a number here
        "is_inferring": True,
        "finished": False,
        "stopped": False,
        "cancel_inference": False,
        "paused": False,
        "result": False,
        "has_result": False,
        "final_result": False,
        "exception": None,
        "preparing_progress": {"status": "Running inference...", "current": 2, "total": 10, "is_size": False},
    }
    popped = job.progress_dict(with_results=True)
    assert popped["pending_results"] == [{"frame": 0}, {"frame": 1}]  # §7.3: the list, drained
    job.push({"frame": 2})
    job.finish({"video_ann": None})
    done = job.progress_dict()
    assert done["stage"] == "Finished" and done["is_inferring"] is False
    assert all(done[k] is True for k in ("finished", "result", "has_result", "final_result"))  # rule 4
    assert done["progress"] == {"current": 3, "total": 10}  # real numbers kept after the end
    assert done["pending_results"] == 1  # rule 3: results pushed before the end are still delivered
    assert job.pop_all() == [{"frame": 2}] and job.final_result == {"video_ann": None}


def test_pop_drains_in_order_exactly_once():
    job = AsyncRequest()
    job.start(5)
    for k in range(3):
        job.push(k)
    assert job.pending_results == 3
    assert job.pop_all() == [0, 1, 2]
    assert job.pop_all() == [] and job.progress(pop=True)["pending_results"] == []
    for k in range(3, 5):
        job.push(k)
    assert job.progress(pop=True)["pending_results"] == [3, 4] and job.pending_results == 0


def test_pop_under_a_concurrent_producer_loses_and_repeats_nothing():
    job = AsyncRequest()
    job.start(5000)

    def producer():
        for k in range(5000):
            job.push(k)
        job.finish()

    thread = threading.Thread(target=producer)
    thread.start()
    delivered = []
    while True:
        progress = job.progress_dict(with_results=True)
        delivered += progress["pending_results"]
        if not progress["is_inferring"]:
            break
    thread.join(5)
    assert delivered == list(range(5000))


def test_a_failure_reports_an_exception_object_and_discards_results():
    job = AsyncRequest()
    job.start(2)
    job.push({"frame": 0})
    job.fail(ValueError("cannot decode frame 1"))
    progress = job.progress_dict(with_results=True)
    assert progress["stage"] == "Error" and progress["finished"] is True and progress["is_inferring"] is False
    assert progress["result"] is progress["has_result"] is progress["final_result"] is True
    assert progress["exception"] == {"type": "ValueError", "message": "cannot decode frame 1", "traceback": None}
    assert progress["pending_results"] == []
    job.finish("late")  # the end is the end
    assert job.progress_dict()["stage"] == "Error" and job.final_result is None


def test_a_failure_before_running_still_ends_the_request():
    job = AsyncRequest()
    job.fail(KeyError())
    progress = job.progress_dict()
    assert progress["exception"] == {"type": "KeyError", "message": "KeyError", "traceback": None}
    assert progress["finished"] is True and progress["progress"] == {"current": 0, "total": 1}


def test_stop_is_honoured_between_frames_and_idempotent():
    store = InMemoryRequestStore()
    job = store.create("video")

    def work(request):
        request.start(100)
        for k in range(100):
            request.check_stop()
            request.push({"frame": k})
            if k == 2:
                request.stop()
                request.stop()
        return {"video_ann": None}

    store.run(job, work).join(5)
    progress = job.progress_dict(with_results=True)
    assert progress["stage"] == "Cancelled" and progress["stopped"] is True and progress["cancel_inference"] is True
    assert progress["finished"] is True and progress["is_inferring"] is False
    assert [r["frame"] for r in progress["pending_results"]] == [0, 1, 2]
    assert progress["progress"] == {"current": 3, "total": 100}
    job.stop()  # after the end: still fine, still cancelled
    assert job.progress_dict()["stage"] == "Cancelled"


def test_stop_after_the_end_keeps_finished():
    job = AsyncRequest()
    job.start(1)
    job.push("r")
    job.finish()
    job.stop()
    progress = job.progress_dict()
    assert progress["stage"] == "Finished" and progress["stopped"] is True


class WatchedCondition(threading.Condition):
    """A Condition that says when someone starts waiting on it: the producer is blocked by backpressure."""

    def __init__(self):
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout=None):
        self.waiting.set()
        return super().wait(timeout)


def test_backpressure_blocks_the_producer_at_500_until_the_client_pops():
    job = AsyncRequest()
    job._lock = WatchedCondition()
    job.start(MAX_PENDING + 20)
    produced = []

    def producer():
        for k in range(MAX_PENDING + 20):
            job.push(k)
            produced.append(k)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    assert job._lock.waiting.wait(timeout=60)  # waiting for the client
    assert MAX_PENDING == 500 and len(produced) == 500 and thread.is_alive()
    assert job.progress_dict()["pending_results"] == 500
    assert job.pop_all() == list(range(500))
    thread.join(60)
    assert produced == list(range(520)) and job.pop_all() == list(range(500, 520))


def test_stop_releases_a_producer_waiting_on_backpressure(monkeypatch):
    monkeypatch.setattr(rq, "MAX_PENDING", 1)
    job = AsyncRequest()
    job._lock = WatchedCondition()
    job.start(3)
    job.push(0)
    outcome = []

    def producer():
        try:
            job.push(1)
        except Stopped:
            outcome.append("stopped")

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    assert job._lock.waiting.wait(timeout=60)  # the producer waits for room
    assert outcome == [] and thread.is_alive()
    job.stop()
    thread.join(60)
    assert outcome == ["stopped"] and job.pop_all() == [0]


def test_clear_stops_then_forgets_after_the_grace_period():
    store = InMemoryRequestStore(idle_ttl_s=100, clear_grace_s=10)
    job = store.create()
    store.clear(job.uuid)
    store.clear(job.uuid)
    store.clear("unknown-uuid")  # idempotent, no error
    assert store.get(job.uuid) is job and job.stopped  # still answers during the grace period
    store.expire(now=time.time() + 9)
    assert store.get(job.uuid) is job
    store.expire(now=time.time() + 11)
    assert store.get(job.uuid) is None and len(store) == 0


def test_requests_not_polled_for_the_ttl_are_stopped_and_forgotten():
    store = InMemoryRequestStore()  # the default TTL: one hour
    idle, polled = store.create(), store.create()
    idle.polled_at -= 3601
    polled.polled_at -= 3601
    polled.progress_dict()  # a poll keeps it alive
    store.expire()
    assert store.get(idle.uuid) is None and idle.stopped
    assert store.get(polled.uuid) is polled and not polled.stopped
    assert store.get("f" * 32) is None


def test_run_maps_outcomes_to_stages():
    store = InMemoryRequestStore()
    crashed, done = store.create(), store.create()

    def crash(request):
        request.start(1)
        raise RuntimeError("engine crashed")

    store.run(crashed, crash).join(5)
    store.run(done, lambda request: {"video_ann": None}).join(5)
    assert crashed.progress_dict()["exception"] == {
        "type": "RuntimeError",
        "message": "engine crashed",
        "traceback": None,
    }
    assert done.progress_dict()["stage"] == "Finished" and done.final_result == {"video_ann": None}


def test_the_store_interface_is_small_and_abstract():
    assert InMemoryRequestStore.__mro__[1] is RequestStore
    assert RequestStore.__abstractmethods__ == {"create", "get", "clear", "expire"}
    with pytest.raises(TypeError):
        RequestStore()
