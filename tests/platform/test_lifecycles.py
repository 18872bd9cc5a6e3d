"""Lifecycles (DESIGN §7): ids are never reused, deleted objects are never served or overwritten for the next
owner, jobs end once, and what a start-up or a dead worker leaves behind is settled exactly once."""

import http.server
import os
import signal
import threading
import time
import uuid
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import timedelta

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from fovea.core.card import ModelCard
from fovea.core.formats.supervisely import CONFIDENCE_TAG
from fovea.jobs.download import run_download
from fovea.jobs.progress import Stopped, finish, mark_failed, write_line
from fovea.platform.auth import now
from fovea.platform.bootstrap import bootstrap
from fovea.platform.config import PlatformSettings
from fovea.platform.models import Process, ProgressLine, Project, Training, Weights, WeightsDownload
from fovea.platform.processes import fail_stale
from fovea.platform.storage import weights_file
from tests.core.graphs import constant_outputs
from tests.platform.conftest import ADMIN_PASSWORD, bearer, login, register


def classifier_bytes(folder, classes):
    card = ModelCard(task="classification", classes=classes, input={"size": (16, 16)}, decoder={"kind": "softmax"})
    logits = np.arange(len(classes), dtype=np.float32)[None]
    return constant_outputs(folder / f"{'-'.join(classes)}.onnx", card, {"logits": logits}).read_bytes()


@pytest.fixture(scope="module")
def onnx_bytes(tmp_path_factory):
    return classifier_bytes(tmp_path_factory.mktemp("w"), ["cat", "dog", "bird"])


def database(client):
    return client.app.app.state.db  # the TestClient's app is the SessionHost around FastAPI


def make_model(client, headers, name="TinyNet"):
    return client.post("/backend/models", json={"name": name, "task_id": 1}, headers=headers).json()["id"]


def upload(client, headers, data, model_id, name="w"):
    response = client.post(
        "/backend/weights",
        data={"name": name, "model_id": str(model_id)},
        files={"onnx_data": ("m.onnx", data)},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return response.json()["weight_id"]


def poll(check, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


@contextmanager
def held_url(payload):
    """A local HTTP server whose responses wait until the caller releases them: a download that stays running."""
    release, asked = threading.Event(), threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.set()
            release.wait(60)
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/m.onnx", asked, release
    finally:
        release.set()
        server.shutdown()


# High 2: ids are never reused; a job whose target weights were deleted never writes into another's row.


def test_deleted_ids_are_never_reused(backend, onnx_bytes):
    headers = bearer(login(backend))
    model_id = make_model(backend, headers)
    first = upload(backend, headers, onnx_bytes, model_id)
    assert backend.delete(f"/backend/weights/{first}", headers=headers).status_code == 204
    weights = upload(backend, headers, onnx_bytes, model_id)
    assert weights != first
    session = backend.post("/backend/sessions", json={"modelweights_id": weights}, headers=headers).json()["id"]
    assert backend.delete(f"/backend/sessions/{session}", headers=headers).status_code == 204
    assert backend.post("/backend/sessions", json={"modelweights_id": weights}, headers=headers).json()["id"] != session


def test_deleting_weights_a_running_download_writes_into_is_409(backend, onnx_bytes):
    headers = bearer(login(backend))
    model_id = make_model(backend, headers)
    backend.settings.allow_url_hosts = ["127.0.0.1"]
    with held_url(onnx_bytes) as (url, asked, release):
        created = backend.post(
            "/backend/weights", json={"name": "remote", "model_id": model_id, "onnx_url": url}, headers=headers
        ).json()
        assert asked.wait(60), "the download never started"
        refused = backend.delete(f"/backend/weights/{created['weight_id']}", headers=headers)
        assert refused.status_code == 409 and "download" in refused.json()["error"]
        release.set()
        status = f"/backend/weightsStatus?process_id={created['process_id']}"
        poll(lambda: backend.get(status, headers=headers).json()["result"] == "finished", "the download to finish")
    assert backend.delete(f"/backend/weights/{created['weight_id']}", headers=headers).status_code == 204


def test_a_download_whose_weights_were_deleted_fails_without_writing(backend, onnx_bytes):
    headers = bearer(login(backend))
    model_id = make_model(backend, headers)
    backend.settings.allow_url_hosts = ["127.0.0.1"]
    db, storage = database(backend), backend.settings.storage_dir
    with db.transaction() as session:  # a registration whose worker has not started yet
        weights = Weights(name="remote", model_id=model_id, is_active=False)
        session.add(weights)
        session.flush()
        download_id = str(uuid.uuid4())
        session.add(WeightsDownload(id=download_id, weights_id=weights.id, user_id=1, url="http://x/", task_id=1))
        weights.process_id, weights_id = download_id, weights.id
    with db.transaction() as session:  # deleted before the worker ran (as by a server that allowed it)
        session.delete(session.get(Weights, weights_id))
    with held_url(onnx_bytes) as (url, _, release):
        release.set()
        with db.transaction() as session:
            session.get(WeightsDownload, download_id).url = url
        run_download(download_id, db.url, str(storage), ["127.0.0.1"])
    with db.transaction() as session:
        download = session.get(WeightsDownload, download_id)
        assert download.state == "failed" and "deleted" in download.error
    assert not weights_file(storage, weights_id).exists()


def test_deleting_the_weights_a_running_training_writes_is_409(backend, onnx_bytes):
    headers = bearer(login(backend))
    model_id = make_model(backend, headers)
    parent = upload(backend, headers, onnx_bytes, model_id, "parent")
    target = upload(backend, headers, onnx_bytes, model_id, "target")
    with database(backend).transaction() as session:
        project = Project(name="p", task_id=1)
        session.add(project)
        session.flush()
        process = running_process(session, project.id, parent, process_type="training")
        session.add(Training(process_id=process.id, weights_id=target))
        session.get(Weights, target).process_id = process.id
    refused = backend.delete(f"/backend/weights/{target}", headers=headers)
    assert refused.status_code == 409 and "training" in refused.json()["error"]


def running_process(session, project_id, weights_id=None, process_type="testing", runner=None, state="running"):
    stamp = now()
    process = Process(
        id=str(uuid.uuid4()),
        process_type=process_type,
        project_id=project_id,
        user_id=1,
        weights_id=weights_id,
        state=state,
        created=stamp,
        updated=stamp,
        **({"runner": runner} if runner else {}),  # None: not run by a server's own pool
    )
    session.add(process)
    session.flush()
    return process


# High 3: the deployed-model cache never serves a deleted session's model to the next owner.


def served_classes(client, token):
    """The class names the model behind a session URL answers with (the Supervisely dialect's tag metas)."""
    meta = client.post(f"/net/{token}/get_output_classes_and_tags", json={}).json()
    return {tag["name"] for tag in meta["tags"]} - {CONFIDENCE_TAG["name"]}


def test_a_deleted_private_session_is_never_served_to_the_next_owner(backend, tmp_path):
    owner = register(backend, "owner")
    stranger = register(backend, "stranger")
    model_id = make_model(backend, owner)
    private = upload(backend, owner, classifier_bytes(tmp_path, ["secret-a", "secret-b"]), model_id, "private")
    session_a = backend.post("/backend/sessions", json={"modelweights_id": private}, headers=owner).json()
    token_a = session_a["token"]
    classes_path = "get_output_classes_and_tags"
    assert served_classes(backend, token_a) == {"secret-a", "secret-b"}  # loaded into the cache
    assert backend.delete(f"/backend/weights/{private}", headers=owner).status_code == 204
    assert backend.post(f"/net/{token_a}/{classes_path}", json={}).status_code == 404

    own = upload(backend, stranger, classifier_bytes(tmp_path, ["mine"]), model_id, "own")
    session_b = backend.post("/backend/sessions", json={"modelweights_id": own}, headers=stranger).json()
    assert served_classes(backend, session_b["token"]) == {"mine"}
    assert backend.post(f"/net/{token_a}/{classes_path}", json={}).status_code == 404
    host = backend.app
    assert all(entry.weights_id != private for entry in host.loaded.values())  # evicted on deletion


def test_deleting_a_session_or_its_dataset_evicts_its_model(backend, tmp_path, digits_zip):
    owner = register(backend, "owner")
    model_id = make_model(backend, owner)
    weights = upload(backend, owner, classifier_bytes(tmp_path, ["x", "y"]), model_id)
    item = backend.post("/backend/sessions", json={"modelweights_id": weights}, headers=owner).json()
    assert backend.post(f"/net/{item['token']}/get_session_info", json={}).status_code == 200
    assert [entry.record_id for entry in backend.app.loaded.values()] == [item["id"]]
    assert backend.delete(f"/backend/sessions/{item['id']}", headers=owner).status_code == 204
    assert len(backend.app.loaded) == 0

    dataset = backend.post(
        "/backend/datasets",
        data={"name": "digits", "task_id": "1"},
        files={"dataset_data": ("d.zip", digits_zip)},
        headers=owner,
    ).json()["id"]
    body = {"modelweights_id": weights, "dataset_id": dataset}
    item = backend.post("/backend/sessions", json=body, headers=owner).json()
    assert backend.post(f"/net/{item['token']}/get_session_info", json={}).status_code == 200
    assert backend.delete(f"/backend/datasets/{dataset}", headers=owner).status_code == 204
    assert len(backend.app.loaded) == 0


# Medium 9: a start fails only what its own executor left behind, and a process ends once.


def test_a_bootstrap_leaves_other_runners_processes_alone(backend):
    db = database(backend)
    with db.transaction() as session:
        project = Project(name="p", task_id=1)
        session.add(project)
        session.flush()
        celery = running_process(session, project.id).id  # run by a Celery worker (no local runner)
        remote = running_process(session, project.id, runner="local@another-host").id
    bootstrap(backend.settings)  # what `fovea users create` or a second replica does
    with db.transaction() as session:
        assert session.get(Process, celery).state == "running"
        assert session.get(Process, remote).state == "running"


def test_a_local_executor_start_fails_only_its_own_orphans(backend):
    db = database(backend)
    executor = backend.app.app.state.executor
    with db.transaction() as session:
        project = Project(name="p", task_id=1)
        session.add(project)
        session.flush()
        mine = running_process(session, project.id, runner=executor.runner).id
        queued = running_process(session, project.id, runner=executor.runner, state="pending").id
        other = running_process(session, project.id, runner="local@another-host").id
        done = running_process(session, project.id, runner=executor.runner, state="finished").id
    assert executor.fail_orphans(db) == 2
    with db.transaction() as session:
        assert [session.get(Process, p).state for p in (mine, queued, other, done)] == [
            "failed",
            "failed",
            "running",
            "finished",
        ]


def test_a_failed_process_never_flips_to_finished(backend):
    db = database(backend)
    with db.transaction() as session:
        project = Project(name="p", task_id=1)
        session.add(project)
        session.flush()
        process_id = running_process(session, project.id).id
    mark_failed(db.url, process_id, "the worker running it died")
    with pytest.raises(Stopped):
        write_line(db, process_id, "Test - batch [1/2]")
    finish(db, process_id, "finished")
    mark_failed(db.url, process_id, "again")
    with db.transaction() as session:
        assert session.get(Process, process_id).state == "failed"
        lines = session.scalars(select(ProgressLine.line).where(ProgressLine.process_id == process_id)).all()
    assert lines == ["Error - the worker running it died"]


def test_a_stop_racing_the_end_of_a_job_leaves_one_final_state(backend):
    headers = bearer(login(backend))
    project = backend.post("/backend/projects", json={"name": "p", "task_id": 1}, headers=headers).json()["id"]
    db = database(backend)
    with db.transaction() as session:
        process_id = running_process(session, project).id
    stopped = backend.post("/backend/stopProcess", json={"process_id": process_id}, headers=headers)
    assert stopped.status_code == 200
    finish(db, process_id, "finished", "Test - done")  # the job's own end, arriving just after the stop
    assert backend.post("/backend/stopProcess", json={"process_id": process_id}, headers=headers).status_code == 404
    with db.transaction() as session:
        assert session.get(Process, process_id).state == "stopped"
        assert session.scalars(select(ProgressLine).where(ProgressLine.process_id == process_id)).all() == []


# Medium 10: a refresh token is redeemed once, however many requests race for it.


def test_parallel_refreshes_of_one_token_succeed_once(backend, monkeypatch):
    import fovea.platform.auth as auth

    refresh = login(backend)["refresh_token"]
    service, db = backend.app.app.state.auth, database(backend)
    parallel = 6
    barrier, arrived = threading.Barrier(parallel), threading.local()
    real_now = auth.now

    def now_after_everyone_read():  # every request has read the token before any of them rotates it
        if not getattr(arrived, "done", False):
            arrived.done = True
            barrier.wait(30)
        return real_now()

    monkeypatch.setattr(auth, "now", now_after_everyone_read)
    outcomes = []

    def redeem():
        try:
            with db.transaction() as session:
                service.token(session, {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "fovea"})
            outcomes.append("ok")
        except Exception as exc:  # each loser's error is checked below
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=redeem) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["OAuthError"] * (parallel - 1) + ["ok"]


# Smaller items.


def test_a_download_whose_worker_died_fails_with_a_reason(backend, onnx_bytes):
    headers = bearer(login(backend))
    model_id = make_model(backend, headers)
    backend.settings.allow_url_hosts = ["127.0.0.1"]
    executor = backend.app.app.state.executor
    with held_url(onnx_bytes) as (url, asked, _):
        created = backend.post(
            "/backend/weights", json={"name": "remote", "model_id": model_id, "onnx_url": url}, headers=headers
        ).json()
        assert asked.wait(60), "the download never started"
        for pid in list(executor.pool._processes):  # kill the worker mid-download
            os.kill(pid, signal.SIGKILL)
        status = f"/backend/weightsStatus?process_id={created['process_id']}"
        ended = poll(
            lambda: (s := backend.get(status, headers=headers).json())["result"] == "failed" and s, "the failure"
        )
    assert ended["error"] == "the worker running it died"
    assert backend.get(f"/backend/weights/{created['weight_id']}", headers=headers).status_code == 404


@pytest.mark.parametrize("username", ["аdmin", "ADMIN", "ａｄｍｉｎ", "Admin"])
def test_look_alike_usernames_are_refused(backend, username):
    body = {"username": username, "email": "x@example.org", "password": "a-long-passphrase-9"}
    response = backend.post("/backend/auth/user/", json=body)
    assert response.status_code == 400 and "username" in response.json()["detail"]["fields"], response.text


def test_home_database_and_stored_files_are_private(tmp_path, onnx_bytes):
    from fastapi.testclient import TestClient

    from fovea.server.backend.app import create_backend_app

    settings = PlatformSettings(home=tmp_path / "home", admin_password=ADMIN_PASSWORD)
    db, _ = bootstrap(settings)
    try:
        with TestClient(create_backend_app(settings, db)) as client:
            headers = bearer(login(client))
            weights = upload(client, headers, onnx_bytes, make_model(client, headers))
    finally:
        db.dispose()
    for folder in (settings.home, settings.storage_dir, settings.storage_dir / "weights"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    for path in (settings.home / "fovea.db", weights_file(settings.storage_dir, weights)):
        assert path.stat().st_mode & 0o777 == 0o600, path


def registered_download(session, model_id, *, state="running", runner=None, silent_s=0):
    """Inactive weights being downloaded, as `POST weights` with an `onnx_url` leaves them; returns the download."""
    weights = Weights(name="remote", model_id=model_id, is_active=False)
    session.add(weights)
    session.flush()
    download = WeightsDownload(
        id=str(uuid.uuid4()), weights_id=weights.id, user_id=1, url="http://x/", task_id=1, state=state, runner=runner
    )
    download.updated = now() - timedelta(seconds=silent_s)
    session.add(download)
    weights.process_id = download.id
    session.flush()
    return download


def download_states(db, downloads):
    with db.transaction() as session:
        return [session.get(WeightsDownload, d).state for d in downloads]


def test_a_local_executor_start_fails_only_its_own_orphaned_downloads(backend):
    db = database(backend)
    executor = backend.app.app.state.executor
    model_id = make_model(backend, bearer(login(backend)))
    with db.transaction() as session:
        mine = registered_download(session, model_id, runner=executor.runner).id
        queued = registered_download(session, model_id, runner=executor.runner, state="pending").id
        other = registered_download(session, model_id, runner="local@another-host").id
        celery = registered_download(session, model_id).id
    assert executor.fail_orphans(db) == 2
    assert download_states(db, (mine, queued, other, celery)) == ["failed", "failed", "running", "running"]
    with db.transaction() as session:
        failed = session.get(WeightsDownload, mine)
        assert failed.error == "the server restarted before the download finished"
        assert failed.weights_id is None  # its inactive weights went with it


def test_a_submitted_download_is_marked_as_run_by_the_local_pool(backend, monkeypatch):
    db = database(backend)
    executor = backend.app.app.state.executor
    model_id = make_model(backend, bearer(login(backend)))
    with db.transaction() as session:
        download_id = registered_download(session, model_id, state="pending").id
    monkeypatch.setattr(executor, "_submit", lambda *args: Future())  # queued, never run
    executor.submit_download(download_id, db.url, backend.settings.storage_dir, [])
    with db.transaction() as session:
        assert session.get(WeightsDownload, download_id).runner == executor.runner


def test_a_download_silent_for_too_long_is_failed_by_the_stale_sweep(backend):
    """A Celery worker that died mid-download cannot say so: the sweep fails what has not moved for too long."""
    db = database(backend)
    model_id = make_model(backend, bearer(login(backend)))
    with db.transaction() as session:
        lost = registered_download(session, model_id, silent_s=700).id
        working = registered_download(session, model_id, silent_s=10).id
    with db.transaction() as session:
        assert fail_stale(session, 600) == 1
    assert download_states(db, (lost, working)) == ["failed", "running"]
    status = backend.get(f"/backend/weightsStatus?process_id={lost}", headers=bearer(login(backend))).json()
    assert status["result"] == "failed" and "no progress for 600 s" in status["error"], status


# A download slower than FOVEA_STALE_AFTER_S: its worker stamps it while it works, so the sweep leaves it running.


@contextmanager
def trickled_url(payload, seconds):
    """A local HTTP server sending `payload` in small pieces over about `seconds` (a slow, live server)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            pieces = 24
            step = -(-len(payload) // pieces)
            for start in range(0, len(payload), step):
                self.wfile.write(payload[start : start + step])
                self.wfile.flush()
                time.sleep(seconds / pieces)  # the server's pace, not a synchronisation

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/m.onnx"
    finally:
        server.shutdown()


def test_a_download_slower_than_the_stale_limit_keeps_running_and_finishes(tmp_path, onnx_bytes):
    from fastapi.testclient import TestClient

    from fovea.server.backend.app import create_backend_app

    settings = PlatformSettings(
        home=tmp_path / "home", admin_password=ADMIN_PASSWORD, stale_after_s=2, allow_url_hosts=["127.0.0.1"]
    )
    db, _ = bootstrap(settings)
    try:
        with TestClient(create_backend_app(settings, db)) as client, trickled_url(onnx_bytes, 6) as url:
            headers = bearer(login(client))
            model_id = make_model(client, headers)
            created = client.post(
                "/backend/weights", json={"name": "slow", "model_id": model_id, "onnx_url": url}, headers=headers
            ).json()
            status = f"/backend/weightsStatus?process_id={created['process_id']}"
            seen = []

            def ended():
                seen.append(client.get(status, headers=headers).json())
                return seen[-1]["result"] in ("finished", "failed")

            poll(ended, "the download to end")
        assert seen[-1]["result"] == "finished", seen[-1]
        assert any(s["result"] == "running" for s in seen)
    finally:
        db.dispose()


# Deleting a project stops its processes first (reference §3); a job still running writes none of its outputs
# into the removed `processes/<id>` folder.


def test_a_job_running_while_its_project_is_deleted_writes_nothing_after(backend, zoo_dir, monkeypatch):
    import base64

    from fovea.jobs import inference

    headers = bearer(login(backend))
    executor, storage = backend.app.app.state.executor, backend.settings.storage_dir
    monkeypatch.setattr(executor, "_submit", lambda *args: Future())  # the job runs here, in a thread, instead
    # Segmentation: its masks are written image by image, before the batch's progress line.
    model = backend.post("/backend/models", json={"name": "UNet", "task_id": 2}, headers=headers).json()["id"]
    weights = upload(backend, headers, (zoo_dir / "unet-random.onnx").read_bytes(), model)
    project = backend.post("/backend/projects", json={"name": "p", "task_id": 2}, headers=headers).json()["id"]
    png = cv2.imencode(".png", np.full((64, 64), 128, np.uint8))[1].tobytes()
    body = {"modelweights_id": weights, "project_id": project,
            "image_data": "data:image/png;base64," + base64.b64encode(png).decode()}  # fmt: skip
    launched = backend.post("/backend/inferenceSingle", json=body, headers=headers)
    assert launched.status_code == 201, launched.text
    process_id = launched.json()["process_id"]

    predicting, go_on = threading.Event(), threading.Event()
    real_predict = inference._predict

    def held_predict(*args, **kwargs):  # the job pauses with its predictions made, about to write them
        predicted = real_predict(*args, **kwargs)
        predicting.set()
        assert go_on.wait(60)
        return predicted

    monkeypatch.setattr(inference, "_predict", held_predict)
    job = threading.Thread(target=inference.run_inference, args=(process_id, database(backend).url, str(storage)))
    job.start()
    try:
        assert predicting.wait(120), "the job never reached prediction"
        assert backend.delete(f"/backend/projects/{project}", headers=headers).status_code == 204
        assert not (storage / "processes" / process_id).exists()
    finally:
        go_on.set()
        job.join(120)
    assert not job.is_alive()
    assert not (storage / "processes" / process_id).exists(), "the job wrote into the deleted process's folder"
    with database(backend).transaction() as session:
        assert session.get(Process, process_id) is None
