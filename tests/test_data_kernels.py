import numpy as np
import pytest

from fastdnn.kernels.cpu import data
from tests.conftest import DTYPES


@pytest.mark.parametrize("dtype", DTYPES + [np.int64])
def test_gathers_match_numpy_fancy_indexing(dtype, rng):
    x = (rng.normal(size=(50, 7)) * 10).astype(dtype)
    index = rng.permutation(50)[:13]
    out = np.empty((13, 7), dtype)
    data.take_rows(x, index, out)
    np.testing.assert_array_equal(out, x[index])
    flat = np.empty(13, dtype)
    data.take(x[:, 0].copy(), index, flat)
    np.testing.assert_array_equal(flat, x[index, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite_matches_numpy(dtype, rng):
    x = rng.normal(size=100).astype(dtype)
    assert data.all_finite(x)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[rng.integers(100)] = bad
        assert not data.all_finite(y)
    # blocks of 4096: a bad value first, last, and on either side of a block boundary
    x = rng.normal(scale=1e30, size=3 * 4096 + 5).astype(dtype)  # huge finite values stay finite
    assert data.all_finite(x) and data.all_finite(x[:0]) and data.all_finite(x[:1])
    for position in (0, 4095, 4096, 8191, x.size - 1):
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[position] = bad
            assert not data.all_finite(y), (position, bad)
