"""The library's random state: one NumPy Generator for initializers and shuffling, seeded by `set_seed`."""

import contextlib
import numbers

import numpy as np

from fastdnn.kernels.jit import jit

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


@jit
def _seed_numba(seed):
    # numba keeps its own random state, separate from NumPy's, for draws inside kernels. Cached on disk
    # like every kernel: uncached, each process that called set_seed compiled it (0.2 s).
    np.random.seed(seed)


@contextlib.contextmanager
def seeded(seed):
    """Run a block with fastdnn's generator seeded by ``seed``, then give the previous one back.

    ``None`` leaves the generator as it is. What the block draws (initial weights, shuffling) then
    depends on ``seed`` alone, and code after the block draws as if the block had not run. numba's
    in-kernel generator has no state to save: it stays seeded from ``seed``.
    """
    global _generator
    if seed is None:
        yield
        return
    previous = _generator
    set_seed(seed)
    try:
        yield
    finally:
        _generator = previous
