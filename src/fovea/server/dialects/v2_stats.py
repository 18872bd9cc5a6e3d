"""Triton's statistics extension (reference/open-inference-protocol.md §11): integral counters per model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERSION = "1"


@dataclass
class V2Stats:
    """Per-model counters in Triton's statistics shape (§11); all integral nanoseconds."""

    success: list[int] = field(default_factory=lambda: [0, 0])
    fail: list[int] = field(default_factory=lambda: [0, 0])
    queue: list[int] = field(default_factory=lambda: [0, 0])
    compute_input: list[int] = field(default_factory=lambda: [0, 0])
    compute_infer: list[int] = field(default_factory=lambda: [0, 0])
    compute_output: list[int] = field(default_factory=lambda: [0, 0])
    inference_count: int = 0
    last_inference: int = 0
    batches: dict[int, list[int]] = field(default_factory=dict)

    @staticmethod
    def add(pair: list[int], seconds: float) -> None:
        pair[0] += 1
        pair[1] += int(seconds * 1e9)

    def as_json(self, name: str, execution_count: int) -> dict[str, Any]:
        def pair(p: list[int]) -> dict[str, int]:
            return {"count": p[0], "ns": p[1]}

        return {
            "name": name,
            "version": VERSION,
            "last_inference": self.last_inference,
            "inference_count": self.inference_count,
            "execution_count": execution_count,
            "inference_stats": {
                "success": pair(self.success),
                "fail": pair(self.fail),
                "queue": pair(self.queue),
                "compute_input": pair(self.compute_input),
                "compute_infer": pair(self.compute_infer),
                "compute_output": pair(self.compute_output),
                "cache_hit": {"count": 0, "ns": 0},
                "cache_miss": {"count": 0, "ns": 0},
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": {"count": c[0], "ns": c[1]},
                    "compute_infer": {"count": c[0], "ns": c[2]},
                    "compute_output": {"count": c[0], "ns": c[3]},
                }
                for size, c in sorted(self.batches.items())
            ],
            "memory_usage": [],
        }
