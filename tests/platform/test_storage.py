"""The storage layout (one module knows it) and the executors' one interface."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from fovea.jobs.celery_app import CeleryExecutor
from fovea.jobs.executor import Executor
from fovea.jobs.local import LocalExecutor
from fovea.platform import storage


def test_the_layout_is_what_existing_homes_hold():
    """Files written by earlier versions stay where the server looks for them."""
    root = Path("/srv/fovea/storage")
    assert storage.weights_file(root, 7) == root / "weights" / "7.onnx"
    assert storage.dataset_dir(root, "abc") == root / "datasets" / "abc"
    assert storage.datasets_root(root) == root / "datasets"
    assert storage.process_outputs(root, "p-1") == root / "processes" / "p-1"
    assert storage.videos_dir(root) == root / "videos"
    fresh = storage.new_dataset_dir(root)
    assert fresh.parent == root / "datasets" and len(fresh.name) == 32 and fresh != storage.new_dataset_dir(root)


@pytest.mark.parametrize("executor", [LocalExecutor, CeleryExecutor])
def test_both_executors_take_the_same_calls(executor):
    """The server calls its executor through `Executor` only: the same arguments, whichever runs the jobs."""
    for name, method in inspect.getmembers(Executor, inspect.isfunction):
        if name.startswith("_"):
            continue
        expected = list(inspect.signature(method).parameters)
        assert list(inspect.signature(getattr(executor, name)).parameters) == expected, name
