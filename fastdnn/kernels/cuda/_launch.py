"""Launch geometry shared by the CUDA kernels: block sizes come from `fastdnn.config`, read at launch."""

import functools

import numba
import numpy as np

from fastdnn import config

#: Upper bound on blocks of a grid-stride launch: enough to fill any current GPU many times over.
MAX_BLOCKS = 65535


def block():
    """Threads per block of the 1-D kernels (``config.CUDA_BLOCK``)."""
    return int(config.CUDA_BLOCK)


def grid(n):
    """Blocks for ``n`` independent items at ``block()`` threads each (grid-stride beyond ``MAX_BLOCKS``)."""
    return max(1, min(-(-int(n) // block()), MAX_BLOCKS))


def numba_type(dtype):
    """The numba scalar type of a NumPy dtype (for shared arrays)."""
    return numba.from_dtype(np.dtype(dtype))


def cached_factory(function):
    """Memoize a kernel factory on its (hashable) arguments: one compiled kernel per tile size and dtype."""
    return functools.lru_cache(maxsize=None)(function)
