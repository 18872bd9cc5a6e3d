"""Soak test: many FLaVor `/invocations` requests against one `fovea serve-model`; memory must stay flat.

    python -m benchmarks.soak [--requests 10000] [--clients 16] [--images 200] [--zoo DIR]

Sends `--requests` AiCOCO requests (one ~1000 px JPEG each) from `--clients` concurrent clients to a
`fovea serve-model` subprocess serving the demo EfficientNet-Lite0, and prints throughput against the
in-process reference loop (benchmarks/reference.py) and the server's resident memory after a warm-up and at
the end. Growth of more than a few percent over thousands of requests is a leak (DESIGN §7).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.photos import make_photos
from benchmarks.reference import reference_loop
from fovea.core.card import load_card
from fovea.zoo import build_zoo
from tests.servers import server_process

MODEL = "efficientnet-lite0-imagenet"
IMAGES = json.dumps([{"id": "0", "index": 0, "file_name": "p.jpg", "category_ids": None, "regressions": None}])
WARM_UP = 200
SLICES = 5


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def invoke(url: str, photos: list[bytes], requests: int, clients: int) -> float:
    """Requests per second over `requests` /invocations from `clients` concurrent clients; any failure raises."""
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one_client() -> None:
            for i in counter:
                files = {"files": ("p.jpg", photos[i % len(photos)], "image/jpeg")}
                response = await client.post(f"{url}/invocations", data={"images": IMAGES}, files=files)
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        return requests / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--images", type=int, default=200, help="Distinct photos, sent round-robin.")
    parser.add_argument("--zoo", type=Path, default=None)
    args = parser.parse_args()

    entry = next(e for e in build_zoo(args.zoo) if e.name == MODEL)
    paths = make_photos(Path(tempfile.gettempdir()) / "fovea-bench-photos", args.images)
    photos = [p.read_bytes() for p in paths]
    reference = reference_loop(paths, entry.path, load_card(entry.path))

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "fovea.cli", "serve-model", str(entry.path), "--port", str(port)]

    with server_process(command, "/ping", 204, timeout_s=120) as server:
        url = server.url
        asyncio.run(invoke(url, photos, WARM_UP, args.clients))
        warm = rss_mib(server.pid)
        # In fifths, RSS after each: growth that levels off is the allocator settling, growth that goes on is a leak.
        part = args.requests // SLICES
        seconds, samples = 0.0, []
        for _ in range(SLICES):
            seconds += part / asyncio.run(invoke(url, photos, part, args.clients))
            samples.append(rss_mib(server.pid))
    rate = part * SLICES / seconds

    print(f"{part * SLICES} /invocations of ~1000 px JPEGs from {args.clients} clients, model {MODEL}")
    print(f"reference loop (in process)  {reference:7.1f} img/s   1.00x")
    print(f"serve-model /invocations     {rate:7.1f} img/s   {rate / reference:.2f}x")
    print(f"server RSS after {WARM_UP} warm-up requests {warm:7.1f} MiB")
    for i, rss in enumerate(samples, 1):
        print(f"server RSS after {i * part:6d} requests  {rss:7.1f} MiB   growth {(rss - warm) / warm:+.1%}")
    middle = SLICES // 2 - 1
    late = (samples[-1] - samples[middle]) / warm
    print(f"growth from {(middle + 1) * part} to {SLICES * part} requests: {late:+.1%}")


if __name__ == "__main__":
    main()
