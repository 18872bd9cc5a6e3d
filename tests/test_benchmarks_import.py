"""The benchmarks are not run by the suite, so a refactor that breaks their imports would go unseen: import each."""

import importlib
from pathlib import Path

import pytest

MODULES = sorted(p.stem for p in (Path(__file__).parents[1] / "benchmarks").glob("*.py") if p.stem != "__init__")


def test_every_benchmark_module_is_found():
    assert {"serving", "custom", "soak"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_a_benchmark_module_imports(module):
    importlib.import_module(f"benchmarks.{module}")
