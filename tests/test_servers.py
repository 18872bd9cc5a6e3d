"""The tests' own server starter: a port another process takes between choosing and binding is not a failure."""

from __future__ import annotations

import socket
import sys

import httpx

from tests import servers


def test_a_port_taken_before_the_server_binds_is_retried_on_another(monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        choose = servers.free_port
        monkeypatch.setattr(servers, "free_port", lambda: next(ports, None) or choose())
        command = lambda port: [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]  # noqa: E731
        with servers.running(command, "/", 200) as url:
            assert not url.endswith(f":{taken}") and httpx.get(url).status_code == 200
