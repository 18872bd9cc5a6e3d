"""Who may use the cores now: one all-cores network run alone, or several single-core runs side by side."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class CoreGate:
    """An all-cores run (a lone request: lowest latency) starts only when nothing runs, and never waits.

    Single-core runs (batches under load: best throughput, since no ONNX Runtime thread then spins waiting
    for a sibling the OS has preempted) may run side by side, and wait while an all-cores run holds the gate.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @property
    def exclusive(self) -> bool:
        """An all-cores run holds the gate (racy read; for deciding whether to keep collecting)."""
        return self._exclusive

    def try_exclusive(self) -> bool:
        """Take the gate for an all-cores run if nothing runs; never blocks. Release with `release_exclusive`."""
        with self._changed:
            if self._shared or self._exclusive:
                return False
            self._exclusive = True
            return True

    def release_exclusive(self) -> None:
        with self._changed:
            self._exclusive = False
            self._changed.notify_all()

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the gate for one single-core run, after any all-cores run has ended."""
        with self._changed:
            self._changed.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._changed:
                self._shared -= 1
