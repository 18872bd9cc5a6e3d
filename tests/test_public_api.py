"""`import fovea` offers exactly its public API (`__all__`), each name resolving, and no subpackage by accident."""

import subprocess
import sys

import fovea


def test_every_exported_name_resolves_to_a_fovea_object():
    for name in fovea.__all__:
        member = getattr(fovea, name)
        assert getattr(member, "__module__", "").startswith("fovea"), name


def test_dir_lists_the_public_api_and_no_submodule():
    listed = [name for name in dir(fovea) if not name.startswith("_")]
    assert listed == sorted(fovea.__all__)
    assert not {"core", "client", "errors", "paths", "server", "platform"} & set(listed)


def test_import_fovea_loads_neither_the_web_stack_nor_torch():
    code = "import sys, fovea; print(sorted({m for m in ('fastapi', 'torch', 'sqlalchemy') if m in sys.modules}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
