"""The URL guard, and downloads from a real HTTP server on loopback (the only network these tests use)."""

import http.server
import io
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image as PILImage
from skimage import data

from fovea.core.io import Limits, check_url, decode_image, fetch_url
from fovea.errors import InputError, LimitExceeded

PNG = io.BytesIO()
PILImage.fromarray(data.chelsea()).save(PNG, "PNG")


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves /cat.png (Chelsea the cat) and a few misbehaving paths. Other test modules reuse it."""

    def do_GET(self):
        routes = {
            "/cat.png": (200, {}, PNG.getvalue()),
            "/accepted": (203, {}, b"partial info"),
            "/big": (200, {}, b"x" * 5000),
            "/redirect-ok": (301, {"Location": "/cat.png"}, b""),
            "/redirect-private": (302, {"Location": "http://10.1.2.3/secret.png"}, b""),
            "/redirect-metadata": (307, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/redirect-file": (302, {"Location": "file:///etc/passwd"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
            "/empty": (200, {}, b""),
        }
        if self.path == "/unsized":  # no Content-Length: only the streaming cap can stop it
            self.send_response(200)
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"y" * 1000)
            return
        if self.path == "/trickle":  # a byte every 0.2 s: every read is quick, the whole is slow
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"z")
                self.wfile.flush()
                time.sleep(0.2)
            return
        if self.path == "/whoami":  # echoes the Host header it received
            self.send_response(200)
            body = self.headers["Host"].encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        status, headers, body = routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


ALLOW_LOOPBACK = Limits(allow_private_hosts=("127.0.0.0/8",))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/x.png", r"^URL host 127.0.0.1 is a loopback address; not allowed$"),
        ("http://localhost/x.png", r"^URL host localhost \(.+\) is a loopback address; not allowed$"),
        ("http://2130706433/x.png", r"2130706433 \(127.0.0.1\) is a loopback address"),  # 127.0.0.1 as a number
        ("http://[::1]/x.png", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/x.png", "loopback"),  # IPv4-mapped IPv6
        ("http://10.0.0.8/x.png", "10.0.0.8 is a private address"),
        ("http://172.16.5.4/x.png", "private"),
        ("https://192.168.1.1/x.png", "private"),
        ("http://169.254.10.1/x.png", "link-local"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/meta-data", "cloud metadata"),
        ("http://0.0.0.0/x.png", "unspecified"),
        ("http://224.0.0.1/x.png", "multicast"),
        ("http://240.0.0.1/x.png", "reserved"),
        ("http://100.64.0.1/x.png", "not a public address"),  # carrier-grade NAT
        ("file:///etc/passwd", r"^URL scheme 'file' is not allowed; use http or https$"),
        ("ftp://example.com/x.png", "scheme 'ftp'"),
        ("gopher://127.0.0.1:70/", "scheme 'gopher'"),
        ("//example.com/x.png", r"scheme '\(none\)'"),
        ("http:///nohost", "has no host"),
        ("http://example.com:99999/x.png", "invalid port"),
    ],
)
def test_non_public_and_non_http_targets_are_refused(url, message):
    with pytest.raises(InputError, match=message):
        check_url(url)


def test_public_addresses_pass_and_the_allowlist_opens_private_ones():
    assert check_url("http://8.8.8.8/x.png") == "8.8.8.8"  # a literal address: no DNS, no network
    assert check_url("https://[2606:4700:4700::1111]/x.png") == "2606:4700:4700::1111"
    assert check_url("http://127.0.0.1:8080/x.png", ALLOW_LOOPBACK) == "127.0.0.1"
    assert check_url("http://127.0.0.1/x.png", Limits(allow_private_hosts=("127.0.0.1",))) == "127.0.0.1"
    assert check_url("http://LOCALHOST/x.png", Limits(allow_private_hosts=("localhost",))) in ("127.0.0.1", "::1")
    with pytest.raises(InputError, match="private"):
        check_url("http://10.0.0.8/x.png", ALLOW_LOOPBACK)  # the allowlist is per network


def test_allowlisted_loopback_fetches_a_real_image(server):
    body, name = fetch_url(f"{server}/cat.png", limits=ALLOW_LOOPBACK)
    assert body == PNG.getvalue() and name == "cat.png"
    np.testing.assert_array_equal(decode_image(body, name=name).pixels, data.chelsea())
    assert fetch_url(f"{server}/accepted", limits=ALLOW_LOOPBACK) == (b"partial info", "accepted")  # any 2xx
    with pytest.raises(InputError, match="loopback address; not allowed"):
        fetch_url(f"{server}/cat.png")  # not allowlisted by default


def test_the_request_goes_to_the_checked_address_with_the_original_host(server):
    port = server.rsplit(":", 1)[1]
    body, _ = fetch_url(f"http://localhost:{port}/whoami", limits=Limits(allow_private_hosts=("localhost",)))
    assert body == f"localhost:{port}".encode()


def test_redirects_are_checked_at_every_hop(server):
    body, name = fetch_url(f"{server}/redirect-ok", limits=ALLOW_LOOPBACK)
    assert body == PNG.getvalue() and name == "cat.png"  # the name comes from the final URL
    with pytest.raises(InputError, match=r"^URL host 10\.1\.2\.3 is a private address; not allowed$"):
        fetch_url(f"{server}/redirect-private", limits=ALLOW_LOOPBACK)
    with pytest.raises(InputError, match="cloud metadata"):
        fetch_url(f"{server}/redirect-metadata", limits=ALLOW_LOOPBACK)
    with pytest.raises(InputError, match="scheme 'file'"):
        fetch_url(f"{server}/redirect-file", limits=ALLOW_LOOPBACK)
    with pytest.raises(InputError, match="redirected more than 5 times"):
        fetch_url(f"{server}/loop", limits=ALLOW_LOOPBACK)


def test_size_and_time_caps(server):
    small = Limits(max_bytes=1000, allow_private_hosts=("127.0.0.1",))
    with pytest.raises(LimitExceeded, match=r"/big is 5000 bytes, over the limit of 1000$"):
        fetch_url(f"{server}/big", limits=small)  # refused from Content-Length
    with pytest.raises(LimitExceeded, match=r"/unsized is over the limit of 1000 bytes$"):
        fetch_url(f"{server}/unsized", limits=small)  # refused while streaming
    started = time.monotonic()
    with pytest.raises(InputError, match=r"/trickle timed out after 1 s$"):
        fetch_url(f"{server}/trickle", limits=Limits(url_timeout_s=1.0, allow_private_hosts=("127.0.0.1",)))
    assert time.monotonic() - started < 3


def test_http_errors_are_one_line_and_hide_credentials(server):
    with pytest.raises(InputError, match=r"^URL http://127.0.0.1:\d+/missing answered HTTP 404$"):
        fetch_url(f"{server}/missing", limits=ALLOW_LOOPBACK)
    with pytest.raises(InputError, match="returned an empty body") as caught:
        fetch_url(server.replace("http://", "http://user:hunter2@") + "/empty", limits=ALLOW_LOOPBACK)
    assert "hunter2" not in str(caught.value)
    with socket.socket() as closed:  # a port nobody listens on any more
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(InputError, match=r"could not be fetched \(ConnectError\)$"):
        fetch_url(f"http://127.0.0.1:{port}/x", limits=ALLOW_LOOPBACK)
