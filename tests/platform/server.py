"""A real `fovea serve` process on a fresh home, for the end-to-end tests (seed replays, the web console)."""

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.servers import server_process


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
    environment = {
        **os.environ,
        "FOVEA_HOME": str(home),
        "FOVEA_ADMIN_PASSWORD": admin_password,
        "FOVEA_ALLOW_URL_HOSTS": '["127.0.0.1"]',
        **env,
    }
    with server_process(
        lambda port: [sys.executable, "-m", "fovea.cli", "serve", "--port", str(port)],
        "/healthz",
        env=environment,
        timeout_s=120,
    ) as process:
        yield process
