"""Launch geometry shared by the CUDA kernels: block sizes come from `fastdnn.config`, read at launch."""

import functools

import numba
import numpy as np
from numba import cuda

from fastdnn import config

#: Upper bound on blocks of a grid-stride launch: enough to fill any current GPU many times over.
MAX_BLOCKS = 65535


def block():
    """Threads per block of the 1-D kernels (``config.CUDA_BLOCK``)."""
    return int(config.CUDA_BLOCK)


def grid(n):
    """Blocks for ``n`` independent items at ``block()`` threads each (grid-stride beyond ``MAX_BLOCKS``)."""
    return max(1, min(-(-int(n) // block()), MAX_BLOCKS))


def tree_threads():
    """Threads of a one-block tree reduction: the largest power of two not above ``block()``."""
    return 1 << max(0, block().bit_length() - 1)


def numba_type(dtype):
    """The numba scalar type of a NumPy dtype (for shared arrays)."""
    return numba.from_dtype(np.dtype(dtype))


def cached_factory(function):
    """Memoize a kernel factory on its (hashable) arguments: one compiled kernel per tile size and dtype."""
    return functools.lru_cache(maxsize=None)(function)


@cuda.jit(device=True)
def unravel4(e, d1, d2, d3):
    """``(i0, i1, i2, i3)`` of the flat index ``e`` into a row-major array of trailing sizes
    ``(d1, d2, d3)``: the (sample, row, column, channel) of one thread's element of an NHWC array."""
    i3 = e % d3
    t = e // d3
    i2 = t % d2
    t = t // d2
    return t // d1, t % d1, i2, i3


@cuda.jit(device=True)
def block_sum(partial, tid):
    """Sum the shared array ``partial`` (one slot per thread, a power-of-two length) into
    ``partial[0]`` by a tree: a fixed order, so equal inputs always give the same sum."""
    cuda.syncthreads()
    width = partial.shape[0] // 2
    while width > 0:
        if tid < width:
            partial[tid] += partial[tid + width]
        cuda.syncthreads()
        width //= 2


@cached_factory
def _column_totals_kernel(threads):
    """Block ``j`` sums column ``j`` of ``rows`` by a tree into ``out[j]`` (added to it, or replacing it)."""

    @cuda.jit
    def column_totals(rows, out, accumulate):
        partial = cuda.shared.array(threads, np.float64)
        j = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        total = 0.0
        for i in range(tid, rows.shape[0], threads):
            total += rows[i, j]
        partial[tid] = total
        block_sum(partial, tid)
        if tid == 0:
            out[j] = out[j] + partial[0] if accumulate else partial[0]

    return column_totals


def column_totals(rows, out, accumulate):
    """``out[j] (+)= sum(rows[:, j])`` for the float64 device arrays ``rows`` (n, k) and ``out`` (k,),
    one block per column, in a fixed order (the same rows always give the same totals)."""
    threads = tree_threads()
    _column_totals_kernel(threads)[rows.shape[1], threads](rows, out, accumulate)
