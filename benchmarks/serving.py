"""HTTP serving throughput and latency against the reference loop, the machine's limit, and LitServe.

    python -m benchmarks.serving [--images 200] [--requests 400] [--zoo DIR]

Everything is measured in this run on this machine (shared and noisy: compare ratios). The client runs in
this process with asyncio, 16 concurrent requests; both servers get the same client and the same JPEGs.
Targets (DESIGN.md §6): 16 clients >= 1.2x the reference loop; 1 client p50 <= in-process predict + 3 ms.

The single-client latency alternates short blocks of in-process `model.predict` and of V2 requests from
three clients, so that all see the same machine: measured one after the other, the machine's drift
between phases (often 1-3 ms here) would land in the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import tritonclient.http as triton

import fovea
from benchmarks.photos import make_photos
from benchmarks.reference import limit, reference_loop
from fovea.server.dialects.v2_codec import encode_bytes_tensor
from fovea.zoo import build_zoo
from tests.server.conftest import free_port

MODEL = "efficientnet-lite0-imagenet"


@contextlib.contextmanager
def process(command: list[str], ready_url: str, timeout: float = 120) -> Iterator[None]:
    # A session of its own, so the server's worker processes (LitServe spawns some) stop with it.
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=1).status_code in (200, 204):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {command}")
            time.sleep(0.2)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def v2_body(jpeg: bytes) -> tuple[bytes, dict[str, str]]:
    blob = encode_bytes_tensor([jpeg])
    tensor = {"name": "image_bytes", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": len(blob)}}
    output = {"name": "labels", "parameters": {"binary_data": True}}
    header = json.dumps({"inputs": [tensor], "outputs": [output]}).encode()
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


async def load(url: str, kind: str, photos: list[bytes], requests: int, concurrency: int) -> float:
    """Requests per second with `concurrency` requests in flight."""
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def worker() -> None:
            for i in counter:
                jpeg = photos[i % len(photos)]
                if kind == "v2":
                    body, headers = v2_body(jpeg)
                    response = await client.post(f"{url}/v2/models/{MODEL}/infer", content=body, headers=headers)
                elif kind == "litserve":
                    response = await client.post(f"{url}/predict", files={"files": ("p.jpg", jpeg, "image/jpeg")})
                else:
                    response = await client.post(
                        f"{url}/inference_image", files={"files": ("p.jpg", jpeg, "image/jpeg")}
                    )
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - start)


def single_client(url: str, model: fovea.OnnxModel, photos: list[bytes], rounds: int) -> dict[str, float]:
    """p50 seconds per request, one at a time: in-process predict, then V2 over HTTP with three clients.

    The stdlib's http.client adds least of its own, so it shows the server's overhead most nearly;
    tritonclient is what V2 users run; httpx parses responses in pure Python and costs the most.
    """
    host = url.removeprefix("http://")
    path = f"/v2/models/{MODEL}/infer"
    output = [triton.InferRequestedOutput("labels", binary_data=True)]

    def in_process(jpeg: bytes) -> None:
        model.predict(jpeg)

    def with_stdlib(jpeg: bytes) -> None:
        body, headers = v2_body(jpeg)
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}")

    def with_httpx(jpeg: bytes) -> None:
        body, headers = v2_body(jpeg)
        client.post(url + path, content=body, headers=headers).raise_for_status()

    def with_triton(jpeg: bytes) -> None:
        tensor = triton.InferInput("image_bytes", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([jpeg], dtype=object), binary_data=True)
        tritonclient.infer(MODEL, [tensor], outputs=output)

    calls = {"in-process": in_process, "http.client": with_stdlib, "tritonclient": with_triton, "httpx": with_httpx}
    times: dict[str, list[float]] = {name: [] for name in calls}
    connection = http.client.HTTPConnection(host, timeout=60)
    with (
        contextlib.closing(connection),
        httpx.Client(timeout=60) as client,
        contextlib.closing(triton.InferenceServerClient(host)) as tritonclient,
    ):
        for round_ in range(rounds):
            block = [photos[(round_ * 10 + i) % len(photos)] for i in range(10)]
            order = list(calls) if round_ % 2 == 0 else list(reversed(calls))
            for name in order:
                for jpeg in block:
                    start = time.perf_counter()
                    calls[name](jpeg)
                    if round_:  # the first round warms each path up
                        times[name].append(time.perf_counter() - start)
                time.sleep(0.02)  # let the last request's threads settle before the next block
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=16, help="Blocks of 10 single-client requests per path.")
    parser.add_argument("--zoo", type=Path, default=None)
    args = parser.parse_args()

    entry = next(e for e in build_zoo(args.zoo) if e.name == MODEL)
    paths = make_photos(Path(tempfile.gettempdir()) / "fovea-bench-photos", args.images)
    photos = [p.read_bytes() for p in paths]
    model = fovea.load(entry.path)
    ref = reference_loop(paths, entry.path, model.card)
    lim, _, _ = limit(paths, entry.path, model.card)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [
        sys.executable,
        "-m",
        "fovea.cli",
        "serve-model",
        str(entry.path),
        "--port",
        str(port),
        "--max-batch-size",
        "8",
    ]
    with process(serve, f"{url}/readyz"):
        asyncio.run(load(url, "v2", photos, 32, 4))  # warm-up
        v2 = asyncio.run(load(url, "v2", photos, args.requests, 16))
        multipart = asyncio.run(load(url, "multipart", photos, args.requests, 16))
        p50 = single_client(url, model, photos, args.rounds)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "benchmarks.litserve_app", str(entry.path), str(port)], f"{url}/health"):
        asyncio.run(load(url, "litserve", photos, 32, 4))
        litserve = asyncio.run(load(url, "litserve", photos, args.requests, 16))

    print(f"{args.requests} requests of ~1000 px JPEGs, model {MODEL}, client in this process")
    print(f"reference loop              {ref:7.1f} img/s   1.00x")
    print(f"limit                       {lim:7.1f} img/s   {lim / ref:.2f}x")
    print(f"16 clients, V2 binary       {v2:7.1f} img/s   {v2 / ref:.2f}x   ({v2 / lim:.0%} of the limit)")
    print(f"16 clients, multipart       {multipart:7.1f} img/s   {multipart / ref:.2f}x")
    print(f"16 clients, LitServe        {litserve:7.1f} img/s   {litserve / ref:.2f}x")
    print(f"  Fovea multipart / LitServe: {multipart / litserve:.2f}x")
    reference = p50["in-process"]
    print(f"1 client p50, {args.rounds - 1} x 10 requests each, alternating: in-process {reference * 1e3:.1f} ms")
    for client in ("http.client", "tritonclient", "httpx"):
        overhead = (p50[client] - reference) * 1e3
        print(f"  V2 over HTTP, {client:<12} {p50[client] * 1e3:5.1f} ms   overhead {overhead:+.1f} ms")


if __name__ == "__main__":
    main()
