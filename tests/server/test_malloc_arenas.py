"""Server processes cap glibc's malloc arenas: one arena per thread is where a server's memory crept up.

The soak benchmark (benchmarks/soak.py) showed serve-model's RSS growing +7.4% over its first 2,000 requests, then
levelling off: each new worker thread got a malloc arena of its own and kept what it had freed. `malloc_stats()`
lists the arenas, so the cap is checked by counting them after many threads have each allocated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

SCRIPT = textwrap.dedent(
    """
    import ctypes, sys, threading
    if sys.argv[1] == "capped":
        from fovea.server.memory import cap_malloc_arenas
        print(cap_malloc_arenas())
    barrier = threading.Barrier(8)
    kept = []

    def work():
        kept.append(bytearray(100_000))  # under the mmap threshold: from this thread's arena
        barrier.wait()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctypes.CDLL("libc.so.6").malloc_stats()
    """
)


def arenas(mode: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Arenas in use after eight threads allocated, and what `cap_malloc_arenas` returned ("" when not called)."""
    run = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, check=True)
    return run.stderr.count("Arena "), run.stdout.strip()


def test_a_server_process_keeps_to_a_few_arenas() -> None:
    assert arenas("plain")[0] >= 4  # glibc's default: an arena per thread (up to 8 per core)
    assert arenas("capped") == (2, "True")


def test_an_operator_setting_wins() -> None:
    env = {**os.environ, "MALLOC_ARENA_MAX": "1"}
    assert arenas("capped", env) == (1, "False")
