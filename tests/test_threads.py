import numba
import pytest

import fastdnn as fd


def test_set_num_threads_reaches_numba_and_blas():
    before = fd.get_num_threads()
    try:
        fd.set_num_threads(1)
        counts = fd.get_num_threads()
        assert counts["numba"] == 1
        assert counts["blas"] and all(n == 1 for n in counts["blas"])
    finally:
        fd.set_num_threads(before["numba"])


def test_thread_count_is_validated():
    with pytest.raises(ValueError, match="n: expected a positive integer, received 0"):
        fd.set_num_threads(0)
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
        fd.set_num_threads(numba.config.NUMBA_NUM_THREADS + 1)


def test_seed_is_validated():
    with pytest.raises(ValueError, match="seed: expected a non-negative integer, received -1"):
        fd.set_seed(-1)
    with pytest.raises(ValueError, match="seed"):
        fd.set_seed(1.5)
