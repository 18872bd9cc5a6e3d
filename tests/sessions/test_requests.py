"""Asynchronous requests: the Supervisely progress rules, pop, stop, clear, backpressure, expiry."""

import threading
import time

import pytest

from fovea.sessions import requests as rq
from fovea.sessions.requests import AsyncRequest, InMemoryRequestStore, Stopped


def test_progress_before_and_during_running():
    job = AsyncRequest()
    assert len(job.uuid) == 32 and int(job.uuid, 16) >= 0
    before = job.progress()
    assert before["stage"] == "Preparing model for inference..."
    assert before["progress"] == {"current": 0, "total": 1} and before["is_inferring"] is True
    assert before["finished"] is before["result"] is before["final_result"] is False
    job.start(10)
    job.push({"frame": 0})
    job.push({"frame": 1})
    running = job.progress()
    assert running["progress"] == {"current": 2, "total": 10} and running["pending_results"] == 2
    assert running["preparing_progress"]["status"] == "Running inference..."


def test_pop_drains_fifo_exactly_once_and_terminal_flags():
    job = AsyncRequest()
    job.start(3)
    for k in range(3):
        job.push({"frame": k})
    popped = job.progress(pop=True)
    assert [r["frame"] for r in popped["pending_results"]] == [0, 1, 2]
    assert job.progress(pop=True)["pending_results"] == []
    job.finish({"video_ann": None})
    done = job.progress()
    assert done["stage"] == "Finished" and done["is_inferring"] is False
    assert all(done[k] is True for k in ("finished", "result", "has_result", "final_result"))
    assert done["progress"] == {"current": 3, "total": 3}


def test_failure_reports_an_exception_object_and_discards_results():
    job = AsyncRequest()
    job.start(2)
    job.push({"frame": 0})
    job.fail(ValueError("cannot decode frame 1"))
    progress = job.progress(pop=True)
    assert progress["stage"] == "Error" and progress["finished"] is True and progress["is_inferring"] is False
    assert progress["exception"] == {"type": "ValueError", "message": "cannot decode frame 1", "traceback": None}
    assert progress["pending_results"] == []


def test_stop_is_honoured_and_idempotent():
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

    store.run(job, work).join(5)
    progress = job.progress(pop=True)
    assert progress["stage"] == "Cancelled" and progress["stopped"] is True and progress["cancel_inference"] is True
    assert [r["frame"] for r in progress["pending_results"]] == [0, 1, 2]


def test_backpressure_blocks_the_producer_until_the_client_pops(monkeypatch):
    monkeypatch.setattr(rq, "MAX_PENDING", 5)
    job = AsyncRequest()
    job.start(8)
    produced = []

    def producer():
        for k in range(8):
            job.push(k)
            produced.append(k)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    time.sleep(0.3)
    assert len(produced) == 5  # waiting for the client
    assert job.progress(pop=True)["pending_results"] == [0, 1, 2, 3, 4]
    thread.join(2)
    assert produced == list(range(8))


def test_stop_releases_a_blocked_producer(monkeypatch):
    monkeypatch.setattr(rq, "MAX_PENDING", 1)
    job = AsyncRequest()
    job.start(3)
    job.push(0)
    errors = []

    def producer():
        try:
            job.push(1)
        except Stopped:
            errors.append("stopped")

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    time.sleep(0.1)
    job.stop()
    thread.join(2)
    assert errors == ["stopped"]


def test_store_clear_grace_and_idle_expiry():
    store = InMemoryRequestStore(idle_ttl_s=100, clear_grace_s=10)
    job = store.create()
    store.clear(job.uuid)
    store.clear("unknown-uuid")  # idempotent, no error
    assert store.get(job.uuid) is job and job.stopped
    store.expire(now=time.time() + 11)
    assert store.get(job.uuid) is None
    idle = store.create()
    store.expire(now=time.time() + 101)
    assert store.get(idle.uuid) is None and idle.stopped


def test_worker_exceptions_become_failed_requests():
    store = InMemoryRequestStore()
    job = store.create()

    def work(request):
        request.start(1)
        raise RuntimeError("engine crashed")

    store.run(job, work).join(5)
    assert job.progress()["exception"]["message"] == "engine crashed"


@pytest.mark.parametrize("pop", [True, False])
def test_progress_object_has_every_key(pop):
    keys = {
        "uuid", "stage", "progress", "pending_results", "is_inferring", "finished", "stopped", "cancel_inference",
        "paused", "result", "has_result", "final_result", "exception", "preparing_progress", "created_at", "updated_at",
    }  # fmt: skip
    assert set(AsyncRequest().progress(pop=pop)) == keys
