"""The library's random state: one NumPy Generator for initializers and shuffling, seeded by `set_seed`."""

import numbers

import numba
import numpy as np

_generator = np.random.default_rng()


def set_seed(seed):
    """Seed every random source fastdnn uses (weights, shuffling, kernels that draw numbers).

    Same seed, same data and same thread count give identical weights after training.

    Parameters
    ----------
    seed : int
        A non-negative integer.
    """
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, received {seed!r}")
    _generator = np.random.default_rng(int(seed))
    _seed_numba(int(seed) % (2**32))


def generator():
    """The current ``numpy.random.Generator``."""
    return _generator


@numba.njit
def _seed_numba(seed):
    # numba keeps its own random state, separate from NumPy's, for draws inside kernels.
    np.random.seed(seed)
