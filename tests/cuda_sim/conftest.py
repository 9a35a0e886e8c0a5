"""CUDA tests under numba's simulator: run only with ``NUMBA_ENABLE_CUDASIM=1`` set before Python starts.

``tests/test_cuda.py`` launches ``python -m pytest tests/cuda_sim`` in a subprocess with the variable
set; in a plain run (where numba was imported without it) everything here is skipped. Block and tile
sizes are patched small, since the simulator runs every CUDA thread as a Python thread.
"""

import os

import pytest

SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def pytest_collection_modifyitems(config, items):
    if SIMULATING:
        return
    skip = pytest.mark.skip(reason="CUDA simulator tests: run with NUMBA_ENABLE_CUDASIM=1 (tests/test_cuda.py does)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    from fastdnn import config

    monkeypatch.setattr(config, "CUDA_BLOCK", 8)
    monkeypatch.setattr(config, "CUDA_TILE", 4)
    monkeypatch.setattr(config, "CUDA_GEMM_REG", 2)
