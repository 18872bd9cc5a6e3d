"""Real server processes for the tests: started on a free loopback port, stopped afterwards."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    """A port nobody listens on now; another process may take it before ours binds, so servers are started with
    `server_process`, which tries again on another port when that happens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BIND_ATTEMPTS = 5


@contextlib.contextmanager
def server_process(
    command_for: Callable[[int], list[str]],
    ready: str = "/readyz",
    status: int = 200,
    env: dict[str, str] | None = None,
    timeout_s: float = 60,
) -> Iterator[subprocess.Popen]:
    """Start the server `command_for(port)` on a free port and yield its process (its URL as `.url`) once `ready`
    answers `status`; stop it afterwards. A port taken between choosing and binding is retried on another one."""
    for attempt in range(BIND_ATTEMPTS):
        port = free_port()
        process = subprocess.Popen(
            command_for(port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    error = process.stderr.read()
                    if "address already in use" in error.lower() and attempt + 1 < BIND_ATTEMPTS:
                        break  # lost the race for the port: try another
                    raise RuntimeError(f"the server exited: {error}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}{ready}", timeout=1).status_code == status:
                        process.url = url
                        yield process
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer {ready} in {timeout_s:.0f} s")
                time.sleep(0.1)
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    raise RuntimeError(f"no free port after {BIND_ATTEMPTS} attempts")


@contextlib.contextmanager
def running(command_for: Callable[[int], list[str]], ready: str = "/readyz", status: int = 200) -> Iterator[str]:
    """`server_process`, yielding the server's URL."""
    with server_process(command_for, ready, status) as process:
        yield process.url


@contextlib.contextmanager
def serve(model: Path, *args: str) -> Iterator[str]:
    """Start `fovea serve-model MODEL ARGS` and yield its base URL once it is ready; stop it afterwards."""
    with running(
        lambda port: [sys.executable, "-m", "fovea.cli", "serve-model", str(model), "--port", str(port), *args]
    ) as url:
        yield url
