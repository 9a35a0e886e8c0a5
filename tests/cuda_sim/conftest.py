"""CUDA tests under numba's simulator, which must be on before numba is imported.

``tests/conftest.py`` switches it on (``NUMBA_ENABLE_CUDASIM=1``) before anything imports numba, so a
plain ``python -m pytest`` runs these tests in the same session as the rest; with
``NUMBA_ENABLE_CUDASIM=0`` set (to keep a real GPU's numba.cuda), everything here is skipped. Block and
tile sizes are patched small, since the simulator runs every CUDA thread as a Python thread.
"""

import os
import time

import numpy as np
import pytest

def _simulating():
    from numba.core import config as numba_config  # what numba read when it was imported

    return bool(numba_config.ENABLE_CUDASIM)


SIMULATING = _simulating()


def _yielding_block_run(self, grid_point, *args):
    """numba-cuda 0.30's ``simulator.kernel.BlockManager.run`` (BSD-2-Clause), plus one ``time.sleep(0)``.

    The simulator runs each CUDA thread of a block as a Python thread, and the block's manager polls
    them in a loop that never releases the GIL by itself: the simulated threads only run when the
    interpreter forces a switch (every 5 ms). Yielding once per poll hands them the GIL at once: the
    simulator tests run 3-4x faster (tests/cuda_sim/test_cuda_graph.py's finite differences and the
    kernel agreement test: 85 s -> 20 s on 2 loaded cores). Threads still start together, block at
    ``syncthreads`` and are released together exactly as in numba's loop.
    """
    from numba.cuda.simulator.kernel import BlockThread

    threads, live, blocked = set(), set(), set()
    for block_point in np.ndindex(*self._block_dim):

        def target():
            self._f(*args)

        thread = BlockThread(target, self, grid_point, block_point, self._debug)
        thread.start()
        threads.add(thread)
        live.add(thread)
    while live:
        for thread in live:
            if thread.syncthreads_blocked:
                blocked.add(thread)
            elif thread.exception:
                for other in threads:  # abort the others, as numba's loop does
                    other.abort = True
                    other.syncthreads_blocked = False
                    other.syncthreads_event.set()
                raise thread.exception[0].with_traceback(thread.exception[1])
        if live == blocked:  # every live thread waits in syncthreads: release them together
            for thread in blocked:
                thread.syncthreads_blocked = False
                thread.syncthreads_event.set()
            blocked = set()
        live = {thread for thread in live if thread.is_alive()}
        if live:
            time.sleep(0)  # the one change: let the simulated threads run
    for thread in threads:
        if thread.exception:
            raise thread.exception[0].with_traceback(thread.exception[1])


if SIMULATING:
    import inspect

    from numba.cuda.simulator import kernel as _simulator_kernel

    # Only over the loop it copies: a numba-cuda whose block manager changed keeps its own loop.
    if "syncthreads_blocked" in inspect.getsource(_simulator_kernel.BlockManager.run):
        _simulator_kernel.BlockManager.run = _yielding_block_run


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
