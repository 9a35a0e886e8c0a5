import numpy as np
import pytest

import fastdnn as fd

DTYPES = [np.float32, np.float64]
# (rows, columns) including a batch of 1, a single column and non-square shapes.
SHAPES = [(1, 1), (1, 7), (5, 1), (3, 4), (17, 9), (64, 33)]

#: Relative tolerance of a kernel against the float64 reference, by dtype.
RTOL = {np.float32: 2e-5, np.float64: 1e-12}
ATOL = {np.float32: 1e-6, np.float64: 1e-13}


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seeded():
    fd.set_seed(0)
    yield
