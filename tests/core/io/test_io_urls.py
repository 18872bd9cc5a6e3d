"""The URL guard against a real loopback HTTP server."""

import http.server
import io
import threading

import numpy as np
import pytest
from PIL import Image as PILImage

from fovea.core.io import Limits, check_url, fetch_url
from fovea.errors import InputError, LimitExceeded

PNG = io.BytesIO()
PILImage.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(PNG, "PNG")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/cat.png":
            body = PNG.getvalue()
        elif self.path == "/big":
            body = b"x" * 5000
        elif self.path.startswith("/redirect-private"):
            self.send_response(302)
            self.send_header("Location", "http://10.1.2.3/secret.png")
            self.end_headers()
            return
        elif self.path == "/redirect-ok":
            self.send_response(301)
            self.send_header("Location", "/cat.png")
            self.end_headers()
            return
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


ALLOW_LOOPBACK = Limits(allow_private_hosts=("127.0.0.0/8",))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/x.png", "loopback"),
        ("http://localhost/x.png", "loopback"),
        ("http://10.0.0.8/x.png", "private"),
        ("http://192.168.1.1/x.png", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[::1]/x.png", "loopback"),
        ("http://0.0.0.0/x.png", "unspecified|private"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("ftp://example.com/x.png", "scheme 'ftp'"),
        ("http:///nohost", "no host"),
    ],
)
def test_non_public_targets_are_refused(url, message):
    with pytest.raises(InputError, match=message):
        check_url(url)


def test_allowlisted_loopback_fetches(server):
    data, name = fetch_url(f"{server}/cat.png", limits=ALLOW_LOOPBACK)
    assert data == PNG.getvalue() and name == "cat.png"
    with pytest.raises(InputError, match="loopback"):
        fetch_url(f"{server}/cat.png")  # not allowlisted by default


def test_redirects_are_checked_at_every_hop(server):
    data, name = fetch_url(f"{server}/redirect-ok", limits=ALLOW_LOOPBACK)
    assert data == PNG.getvalue() and name == "cat.png"
    with pytest.raises(InputError, match=r"10\.1\.2\.3"):
        fetch_url(f"{server}/redirect-private", limits=ALLOW_LOOPBACK)


def test_size_cap_and_http_errors(server):
    with pytest.raises(LimitExceeded, match=r"over the limit of 1000"):
        fetch_url(f"{server}/big", limits=Limits(max_bytes=1000, allow_private_hosts=("127.0.0.1",)))
    with pytest.raises(InputError, match="HTTP 404"):
        fetch_url(f"{server}/missing", limits=ALLOW_LOOPBACK)
