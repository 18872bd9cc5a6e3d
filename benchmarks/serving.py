"""HTTP serving in every dialect, on `fovea serve-model` and through `/net/<token>/` on `fovea serve`, against the
in-process reference loop and LitServe, in one run; one table.

    python -m benchmarks.serving [--requests 200] [--single 40] [--images 100] [--zoo DIR]

Everything is measured in this run on this machine (shared and noisy: compare ratios). The clients run in this
process: threads with the standard library's `http.client` and request bodies built before the clock starts, so
the client adds as little of its own as it can; every server gets the same clients and the same JPEGs.

Dialects (one ~1000 px JPEG per image): V2 `image_bytes` over the binary tensor extension (tritonclient's way),
V2 raw mode (the body is the JPEG), FLaVor `/invocations` (multipart `files` + `images` JSON), Supervisely
`/inference_image` and `/inference_batch` (4 images per request; rates count images).

Targets (DESIGN.md §6, issue 13): 16 clients >= 1.5x the reference loop and ahead of LitServe in every dialect;
`/net/<token>/` within 10% of `fovea serve-model`; 1 client p50 <= model time + 3 ms (V2, FLaVor); the back-end's
`/healthz` p99 < 50 ms while the `/net/` sessions are under load.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import fovea
from benchmarks.photos import make_photos
from benchmarks.reference import limit, reference_loop
from fovea.server.dialects.v2_codec import encode_bytes_tensor
from fovea.zoo import build_zoo
from tests.servers import free_port

MODEL = "efficientnet-lite0-imagenet"
BATCH_IMAGES = 4  # images per Supervisely `/inference_batch` request
ADMIN_PASSWORD = "benchmark-" + uuid.uuid4().hex[:12]


@contextlib.contextmanager
def process(
    command: list[str], ready_url: str, env: dict[str, str] | None = None, timeout: float = 300
) -> Iterator[int]:
    """A server process, yielded (its pid) once `ready_url` answers; stopped with its whole process group."""
    # A session of its own, so the server's worker processes (LitServe spawns some) stop with it.
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=1).status_code in (200, 204):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {command}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


# -- request bodies, built before any clock starts ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    path: str
    body: bytes
    headers: dict[str, str]
    images: int = 1


def multipart(fields: list[tuple[str, str | None, bytes]]) -> tuple[bytes, dict[str, str]]:
    """(name, filename or None, content) parts as a multipart/form-data body and its headers."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = "Content-Type: image/jpeg\r\n" if filename else ""
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode() + content + b"\r\n")
    body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def v2_body(jpeg: bytes) -> tuple[bytes, dict[str, str]]:
    blob = encode_bytes_tensor([jpeg])
    tensor = {"name": "image_bytes", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": len(blob)}}
    output = {"name": "labels", "parameters": {"binary_data": True}}
    header = json.dumps({"inputs": [tensor], "outputs": [output]}).encode()
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


FLAVOR_IMAGES = json.dumps([{"id": "0", "index": 0, "file_name": "p.jpg", "category_ids": None, "regressions": None}])


def calls(dialect: str, photos: list[bytes], model_name: str) -> list[Call]:
    """One request per photo (per 4 photos for a Supervisely batch)."""
    out = []
    if dialect == "supervisely batch":
        for start in range(0, len(photos) - BATCH_IMAGES + 1, BATCH_IMAGES):
            group = photos[start : start + BATCH_IMAGES]
            body, headers = multipart([("files", f"image_{i}.jpg", jpeg) for i, jpeg in enumerate(group)])
            out.append(Call("/inference_batch", body, headers, BATCH_IMAGES))
        return out
    for jpeg in photos:
        if dialect == "V2 binary":
            body, headers = v2_body(jpeg)
            out.append(Call(f"/v2/models/{model_name}/infer", body, headers))
        elif dialect == "V2 raw image":
            headers = {"Inference-Header-Content-Length": "0", "Content-Type": "image/jpeg"}
            out.append(Call(f"/v2/models/{model_name}/infer", jpeg, headers))
        elif dialect == "FLaVor":
            body, headers = multipart([("images", None, FLAVOR_IMAGES.encode()), ("files", "p.jpg", jpeg)])
            out.append(Call("/invocations", body, headers))
        elif dialect == "supervisely image":
            body, headers = multipart([("files", "p.jpg", jpeg)])
            out.append(Call("/inference_image", body, headers))
        elif dialect == "LitServe":
            body, headers = multipart([("files", "p.jpg", jpeg)])
            out.append(Call("/predict", body, headers))
        else:
            raise ValueError(dialect)
    return out


DIALECTS = ["V2 binary", "V2 raw image", "FLaVor", "supervisely image", "supervisely batch"]


# -- clients ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    images_per_s: float
    p50_s: float
    p95_s: float


def drive(base: str, work: list[Call], requests: int, clients: int) -> Run:
    """`requests` calls (round-robin over `work`) from `clients` threads, each on its own keep-alive connection."""
    host, _, prefix = base.removeprefix("http://").partition("/")
    prefix = f"/{prefix}" if prefix else ""
    counter = itertools.count()
    latencies: list[float] = []
    images = [0] * clients
    errors: list[str] = []

    def client(k: int) -> None:
        connection = http.client.HTTPConnection(host, timeout=120)
        with contextlib.closing(connection):
            while (i := next(counter)) < requests and not errors:
                call = work[i % len(work)]
                started = time.perf_counter()
                connection.request("POST", prefix + call.path, body=call.body, headers=call.headers)
                response = connection.getresponse()
                answer = response.read()
                latencies.append(time.perf_counter() - started)
                if response.status != 200:
                    errors.append(f"{call.path} answered {response.status}: {answer[:200]!r}")
                images[k] += call.images

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    latencies.sort()
    return Run(sum(images) / took, latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)])


@contextlib.contextmanager
def healthz_latencies(base: str) -> Iterator[list[float]]:
    """Seconds each back-end `/healthz` took, polled every 20 ms while the block runs, from a process of its own:
    in this one, the poller would wait for the load's client threads and count that wait as the server's."""
    latencies: list[float] = []
    stop, (receiving, sending) = multiprocessing.Event(), multiprocessing.Pipe(duplex=False)
    poller = multiprocessing.Process(target=_poll_healthz, args=(base, stop, sending), daemon=True)
    poller.start()
    try:
        yield latencies
    finally:
        stop.set()
        latencies.extend(receiving.recv())
        poller.join()


def _poll_healthz(base: str, stop: Any, results: Any) -> None:
    latencies = []
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    with contextlib.closing(connection):
        while not stop.wait(0.02):
            started = time.perf_counter()
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                latencies.append(time.perf_counter() - started)
    results.send(latencies)


def single_client(base: str, work: list[Call], model: fovea.OnnxModel, photos: list[bytes], requests: int) -> Run:
    """1 client, in blocks of 5 requests alternating with blocks of 5 in-process `model.predict` calls, so both
    see the same machine (measured one after the other, its drift would land in the difference).

    The Run's p95 field holds the in-process p50 instead: the model time this dialect's p50 is compared with.
    """
    http_times, local_times = [], []
    for block in range(max(1, requests // 5)):
        local_times += [timed(model.predict, photos[(block * 5 + i) % len(photos)]) for i in range(5)]
        run = drive(base, work[block * 5 % len(work) :] + work, 5, 1)
        http_times.append(run.p50_s)
    return Run(0.0, statistics.median(http_times), statistics.median(local_times))


def timed(fn: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def measure(
    base: str,
    dialects: list[str],
    photos: list[bytes],
    model: fovea.OnnxModel,
    args: argparse.Namespace,
    during_load: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> dict[str, tuple[Run, Run]]:
    """(1 client, 16 clients) per dialect."""
    results = {}
    model_name = v2_name(base) if any(d.startswith("V2") for d in dialects) else ""
    for dialect in dialects:
        work = calls(dialect, photos, model_name)
        drive(base, work, 16, 4)  # warm-up: engines, connections, the first decodes
        one = single_client(base, work, model, photos, args.single)
        with during_load() if during_load else contextlib.nullcontext():
            many = drive(base, work, max(args.requests // work[0].images, 16), 16)
        results[dialect] = (one, many)
    return results


# -- servers ----------------------------------------------------------------------------------------


def v2_name(base: str) -> str:
    return httpx.post(f"{base}/v2/repository/index", json={}, timeout=30).json()[0]["name"]


def platform_session(url: str) -> str:
    """Log in as the admin, deploy the demo EfficientNet weights; the session's URL."""
    form = {"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "client_id": "fovea"}
    token = httpx.post(f"{url}/backend/auth/token", data=form, timeout=60).json()["access_token"]
    with httpx.Client(base_url=f"{url}/backend/", headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
        models = {m["name"]: m["id"] for m in api.get("models").json()}
        [weights] = api.get("weights", params={"model_id": models["EfficientNet-Lite0"]}).json()
        session = api.post("sessions", json={"modelweights_id": weights["id"]})
        session.raise_for_status()
        return f"{url}/net/{session.json()['token']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100, help="Distinct photos, sent round-robin.")
    parser.add_argument("--requests", type=int, default=200, help="Images per 16-client run.")
    parser.add_argument("--single", type=int, default=40, help="Requests per 1-client run.")
    parser.add_argument("--zoo", type=Path, default=None)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    entry = next(e for e in build_zoo(args.zoo) if e.name == MODEL)
    paths = make_photos(Path(tempfile.gettempdir()) / "fovea-bench-photos", args.images)
    photos = [p.read_bytes() for p in paths]
    model = fovea.load(entry.path)
    ref_before = reference_loop(paths, entry.path, model.card)
    lim, _, _ = limit(paths, entry.path, model.card)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "benchmarks.litserve_app", str(entry.path), str(port)], f"{base}/health"):
        litserve = measure(base, ["LitServe"], photos, model, args)["LitServe"]

    # Both Fovea servers run side by side (idle when not driven), and each dialect runs on one right after the
    # other, in alternating order: the machine's drift over the run cannot pass for a difference between them.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_model = [sys.executable, "-m", "fovea.cli", "serve-model", str(entry.path), "--port", str(port)]
    platform_port = free_port()
    url = f"http://127.0.0.1:{platform_port}"
    standalone: dict[str, tuple[Run, Run]] = {}
    net: dict[str, tuple[Run, Run]] = {}
    health: list[float] = []

    @contextlib.contextmanager
    def watching() -> Iterator[None]:
        with healthz_latencies(url) as latencies:
            yield
        health.extend(latencies)

    with tempfile.TemporaryDirectory(prefix="fovea-bench-home-") as home:
        shutil.copytree(entry.path.parent, Path(home) / "zoo")
        env = {"FOVEA_HOME": home, "FOVEA_ADMIN_PASSWORD": ADMIN_PASSWORD}
        platform = [sys.executable, "-m", "fovea.cli", "serve", "--port", str(platform_port)]
        with process(serve_model, f"{base}/readyz"), process(platform, f"{url}/healthz", env):
            session_url = platform_session(url)
            for i, dialect in enumerate(DIALECTS):
                runs = [(standalone, base, None), (net, session_url, watching)]
                for results, where, during in runs if i % 2 == 0 else runs[::-1]:
                    results.update(measure(where, [dialect], photos, model, args, during))
    ref_after = reference_loop(paths, entry.path, model.card)
    ref = (ref_before + ref_after) / 2

    rows = [("multipart", "LitServe", *litserve, None)]
    for dialect in DIALECTS:
        rows.append((dialect, "serve-model", *standalone[dialect], None))
        rows.append((dialect, "/net/<token>", *net[dialect], standalone[dialect][1].images_per_s))
    lit_rate = litserve[1].images_per_s
    print(
        f"EfficientNet-Lite0, ~1000 px JPEGs, clients in this process (http.client threads); load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (a shared machine: compare ratios)"
    )
    print(
        f"reference loop {ref:.1f} img/s (the mean of {ref_before:.1f} before and {ref_after:.1f} after the servers);"
        f" limit {lim:.1f} img/s ({lim / ref:.2f}x)"
    )
    print(
        "1 client: p50 per request, and over the in-process predict p50 (model time) measured in alternating"
        f" blocks; a Supervisely batch request carries {BATCH_IMAGES} images"
    )
    print(
        f"{'dialect':<19}{'server':<13}{'1 client p50':>13}{'model':>9}{'overhead':>10}{'16 clients':>12}"
        f"{'x ref':>7}{'x LitServe':>11}{'net/serve-model':>17}"
    )
    for dialect, server, one, many, standalone_rate in rows:
        rate = many.images_per_s
        versus = f"{rate / standalone_rate:>17.2f}" if standalone_rate else ""
        print(
            f"{dialect:<19}{server:<13}{one.p50_s * 1e3:>10.1f} ms{one.p95_s * 1e3:>6.1f} ms"
            f"{(one.p50_s - one.p95_s) * 1e3:>+7.1f} ms{rate:>8.1f}/s{rate / ref:>7.2f}{rate / lit_rate:>11.2f}{versus}"
        )
    health.sort()
    p99 = health[min(len(health) - 1, int(len(health) * 0.99))] if health else float("nan")
    print(
        f"back-end /healthz while /net/ sessions ran 16 clients: {len(health)} polls, "
        f"p50 {statistics.median(health) * 1e3 if health else float('nan'):.1f} ms, p99 {p99 * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
