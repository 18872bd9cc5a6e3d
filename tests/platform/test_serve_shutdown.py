"""Stopping `fovea serve` (SIGTERM, as a service manager does) ends the worker processes it started."""

import time
from pathlib import Path

import httpx

from tests.platform.server import fovea_serve_process, fresh_home

PASSWORD = "shutdown-admin-3"


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Running or sleeping: not gone and not a zombie (a container's init may not reap orphans at once)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_stopping_the_server_ends_its_workers(zoo_dir, tmp_path):
    with fovea_serve_process(fresh_home(zoo_dir, tmp_path), PASSWORD) as server:
        token = httpx.post(
            f"{server.url}/backend/auth/token",
            data={"grant_type": "password", "username": "admin", "password": PASSWORD, "client_id": "fovea"},
        ).json()["access_token"]
        client = httpx.Client(  # a first job spawns its worker: allow for a loaded machine
            base_url=f"{server.url}/backend/", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        project = client.post("projects", json={"name": "p", "task_id": 1}).json()["id"]
        [weights] = [w for w in client.get("weights", params={"model_id": 2}).json() if w["name"] == "LeNet_Digits"]
        body = {"project_id": project, "modelweights_id": weights["id"], "dataset_id": 1}
        process = client.post("inference", json=body).json()["process_id"]
        for _ in range(300):
            [status] = client.get("status", params={"process_id": process}).json()
            if status["status"]["process_status"] == "finished":
                break
            time.sleep(0.2)
        workers = children(server.pid)
        assert workers, "the inference ran in no worker process"
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if alive(pid)], "worker processes outlived the server"
