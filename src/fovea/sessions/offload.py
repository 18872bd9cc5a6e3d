"""Run small work on the event loop and big work in a worker thread, deciding by its measured cost.

A thread hop costs the loop ~50-100 us and the request a wake-up; decoding a classifier's outputs or building its
answer costs less than that, while a segmentation's masks, contours or bitmaps cost 5-20 ms, during which the
loop would answer nobody. Each function's recent cost (fast to rise, slow to fall) picks where its next call runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Work measured under this many seconds runs on the loop.
INLINE_S = 0.0005


class CostAdaptive:
    """`await adaptive.call(fn, *args)`: `fn(*args)` inline while `fn` has been cheap, else in a worker thread.

    Costs are kept per function object, so pass module-level functions or bound methods, not fresh lambdas
    (a fresh lambda is never measured and always goes to a thread).
    """

    def __init__(self, inline_s: float = INLINE_S) -> None:
        self.inline_s = inline_s
        self._cost: dict[Any, float] = {}  # unmeasured: absent, and the first call goes to a thread

    def inline(self, fn: Callable[..., Any]) -> bool:
        """Whether the next call of `fn` would run on the loop."""
        cost = self._cost.get(fn)
        return cost is not None and cost < self.inline_s

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        if self.inline(fn):
            return self.timed(fn, *args)
        return await asyncio.to_thread(self.timed, fn, *args)

    def timed(self, fn: Callable[..., T], *args: Any) -> T:
        started = time.perf_counter()
        result = fn(*args)
        took = time.perf_counter() - started
        cost = self._cost.get(fn)
        self._cost[fn] = took if cost is None or took > cost else 0.9 * cost + 0.1 * took
        return result
