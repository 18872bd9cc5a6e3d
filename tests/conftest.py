"""Shared fixtures: the demo zoo, built once per test session (or reused from $FOVEA_TEST_ZOO)."""

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory) -> Path:
    """A built demo zoo. Point $FOVEA_TEST_ZOO at a zoo folder to reuse it across runs (what is missing is built)."""
    from fovea.zoo import build_zoo

    reuse = os.environ.get("FOVEA_TEST_ZOO")
    root = Path(reuse).expanduser() if reuse else tmp_path_factory.mktemp("zoo")
    build_zoo(root)
    return root
