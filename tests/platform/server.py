"""A real `fovea serve` process on a fresh home, for the end-to-end tests (seed replays, the web console)."""

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.server.conftest import free_port


def fresh_home(zoo_dir: Path, home: Path) -> Path:
    """A FOVEA_HOME holding the already built demo zoo: the server only seeds its catalog from it."""
    shutil.copytree(zoo_dir, home / "zoo")
    return home


@contextlib.contextmanager
def fovea_serve(home: Path, admin_password: str, **env: str) -> Iterator[str]:
    """Start `fovea serve` on a free port with FOVEA_HOME=home; yields its URL once /healthz answers."""
    with fovea_serve_process(home, admin_password, **env) as process:
        yield process.url


@contextlib.contextmanager
def fovea_serve_process(home: Path, admin_password: str, **env: str) -> Iterator[subprocess.Popen]:
    """`fovea_serve`, yielding the server's process (its URL as `.url`); stopped with SIGTERM on exit."""
    port = free_port()
    environment = {
        **os.environ,
        "FOVEA_HOME": str(home),
        "FOVEA_ADMIN_PASSWORD": admin_password,
        "FOVEA_ALLOW_URL_HOSTS": '["127.0.0.1"]',
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "fovea.cli", "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode())
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("fovea serve did not become healthy in 120 s")
        process.url = url
        yield process
    finally:
        process.terminate()
        process.wait(20)
