import os

# The CUDA tests (tests/cuda_sim) run in numba's CUDA simulator, in this same session: the switch must be
# set before numba is first imported (numba reads it once). The CPU kernels are unaffected by it.
# NUMBA_ENABLE_CUDASIM=0 in the environment keeps the simulator off (tests/cuda_sim is then skipped).
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import fastdnn as fd  # noqa: E402

# Pinned, so that seeded runs repeat bit for bit: the automatic choice may change the count during
# training, and OpenBLAS's products with one and two threads can differ in the last bit. The choice
# itself is tested in test_threads.py with a fake clock.
fd.set_num_threads(1)

# Hypothesis profiles: "ci" (the default: a few hundred examples per property, the same ones on every
# run), "long" on demand with HYPOTHESIS_PROFILE=long (new random examples each run).
settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DTYPES = [np.float32, np.float64]
#: (dtype, plan) for the kernel tests: both float types on one thread, and float64 under the pool
#: (`plan`; its slicing of the batch does not depend on the float type).
DTYPE_PLANS = [(np.float32, "one thread"), (np.float64, "one thread"), (np.float64, "pool of 3")]
# (rows, columns) including a batch of 1, a single column and non-square shapes.
SHAPES = [(1, 1), (1, 7), (5, 1), (3, 4), (17, 9), (64, 33)]

#: Relative tolerance of a kernel against the float64 reference, by dtype.
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-6, np.float64: 1e-13}


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(params=["one thread", "pool of 3"])
def plan(request, monkeypatch):
    """The test once on the suite's one thread, and once under fastdnn's pool cutting every batch
    and every product into 3 parts (the thresholds lowered so that small ones are cut too)."""
    from fastdnn import threads

    if request.param == "pool of 3":
        monkeypatch.setattr(threads, "MIN_PART_ROWS", 1)
        monkeypatch.setattr(threads, "MIN_PART_FLOPS", 1)
        threads.use_plan(threads.Plan(1, 3))
    yield request.param
    fd.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded():
    fd.set_seed(0)
    yield
