"""Compile CUDA kernels for a real GPU (to PTX) without one: in a process without the simulator.

The simulator runs kernel bodies as untyped Python, so typing errors and float64 promotions in
float32 code only show when numba-cuda compiles them. ``compile_script(body)`` runs ``body`` after a
preamble that pins the compute capability (there is no device to ask) and checks that NVVM is
installed (the test extra brings it: ``numba-cuda[cu13]``); without NVVM the calling test is skipped
with a reason starting "no NVVM", except in CI (``CI=true``), where that is a failure.
"""

import os
import subprocess
import sys

import pytest

_PREAMBLE = """
import sys, types
import numba.cuda.dispatcher as dispatcher
from numba import cuda

# No GPU here: type device functions for a fixed compute capability instead of the current device's.
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(8, 0))

def trivial(a):
    a[0] = 1.0

try:
    cuda.compile_ptx(trivial, "void(float32[::1])", cc=(8, 0))
except Exception as error:
    print("no NVVM:", type(error).__name__, error)
    sys.exit(3)
"""


def compile_script(body):
    """Run the preamble + ``body`` in a fresh Python without the simulator; returns its stdout."""
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_ENABLE_CUDASIM"}
    result = subprocess.run([sys.executable, "-c", _PREAMBLE + body], env=env, capture_output=True, text=True, timeout=300)
    if result.returncode == 3:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{result.stdout.strip()}: CI installs NVVM and NVRTC with the test extra")
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
