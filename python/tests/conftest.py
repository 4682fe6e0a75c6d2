import os
import pytest
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Tiny checkpoints of all 30 MoE families, written once per test session (tiny_families.py)."""
    from tiny_families import TINY, build

    root = tmp_path_factory.mktemp("families")
    return {f: build(f, str(root / f)) for f in TINY}
