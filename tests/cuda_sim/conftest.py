"""CUDA tests under numba's simulator, which must be on before numba is imported.

``tests/conftest.py`` switches it on (``NUMBA_ENABLE_CUDASIM=1``) before anything imports numba, so a
plain ``python -m pytest`` runs these tests in the same session as the rest; with
``NUMBA_ENABLE_CUDASIM=0`` set (to keep a real GPU's numba.cuda), everything here is skipped. Block and
tile sizes are patched small, since the simulator runs every CUDA thread as a Python thread.
"""

import os

import pytest

def _simulating():
    from numba.core import config as numba_config  # what numba read when it was imported

    return bool(numba_config.ENABLE_CUDASIM)


SIMULATING = _simulating()


def pytest_collection_modifyitems(config, items):
    if SIMULATING:
        return
    skip = pytest.mark.skip(reason="CUDA simulator tests: NUMBA_ENABLE_CUDASIM=0 was set, or numba was imported before tests/conftest.py")
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
