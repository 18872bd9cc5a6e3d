"""Request body limits of `fovea serve` (DESIGN §7): 64 MiB by default, more only on the two upload routes,
and an over-limit body refused with 413 before it is read."""

import socket
import threading
from urllib.parse import urlsplit

import httpx
import pytest

from tests.platform.server import fovea_serve_process, fresh_home

PASSWORD = "limits-admin-7"
MiB = 1024**2


@pytest.fixture(scope="module")
def server(zoo_dir, tmp_path_factory):
    with fovea_serve_process(fresh_home(zoo_dir, tmp_path_factory.mktemp("home")), PASSWORD) as process:
        token = httpx.post(
            f"{process.url}/backend/auth/token",
            data={"grant_type": "password", "username": "admin", "password": PASSWORD, "client_id": "fovea"},
        ).json()["access_token"]
        yield process.url, f"Bearer {token}"


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: fovea", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def read_status(connection: socket.socket) -> int:
    """The status code of the response, read while the client has sent no body at all (or stopped mid-body)."""
    received = b""
    while b"\r\n" not in received:
        chunk = connection.recv(4096)
        if not chunk:
            raise AssertionError(f"the server closed the connection without an answer: {received!r}")
        received += chunk
    return int(received.split(b" ", 2)[1])


def status_before_body(url: str, path: str, length: int, authorization: str | None = None) -> int:
    """Send only the headers of a `length`-byte JSON POST; the answer must come without a single body byte."""
    headers = {"Content-Type": "application/json", "Content-Length": str(length)}
    if authorization:
        headers["Authorization"] = authorization
    with connect(url) as connection:
        connection.sendall(head(path, headers))
        return read_status(connection)


def test_a_declared_body_over_64_mib_is_refused_before_it_is_sent(server):
    url, authorization = server
    assert status_before_body(url, "/backend/projects", 100 * MiB, authorization) == 413
    assert status_before_body(url, "/backend/auth/token", 100 * MiB) == 413
    assert status_before_body(url, "/backend/auth/user", 65 * MiB) == 413


def test_only_the_upload_routes_take_more_and_not_from_anonymous_callers(server):
    url, _ = server
    # 100 MiB fits the upload limit (2 GiB): an anonymous caller is turned away by 401 without sending it.
    assert status_before_body(url, "/backend/datasets", 100 * MiB) == 401
    assert status_before_body(url, "/backend/weights", 100 * MiB) == 401
    assert status_before_body(url, "/backend/datasets", 3 * 1024 * MiB) == 413
    assert status_before_body(url, "/backend/videos", 100 * MiB) == 413


def test_a_chunked_body_is_cut_off_once_it_passes_64_mib(server):
    url, authorization = server
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "Authorization": authorization}
    chunk = b"%x\r\n%s\r\n" % (MiB, b" " * MiB)
    sent = 0

    def send_body(connection: socket.socket) -> None:
        nonlocal sent
        try:
            for _ in range(200):  # up to 200 MiB; the answer must come long before
                connection.sendall(chunk)
                sent += MiB
            connection.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed: it stopped reading, as it should
            pass

    with connect(url) as connection:
        connection.sendall(head("/backend/projects", headers))
        sender = threading.Thread(target=send_body, args=(connection,), daemon=True)
        sender.start()
        status = read_status(connection)
        stopped_at = sent
        connection.shutdown(socket.SHUT_RDWR)
        sender.join(30)
    assert status == 413
    assert stopped_at < 100 * MiB, f"the server read {stopped_at} bytes before refusing"
