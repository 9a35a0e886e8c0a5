"""CUDA twins of ``kernels.cpu.data``: gathering a shuffled batch on the device, finiteness checks."""

import math

import numpy as np
from numba import cuda

from fastdnn.kernels.cuda._launch import block, grid


@cuda.jit
def _take_rows(x, index, out):
    n = index.shape[0]
    d = x.shape[1]
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        r = k // d
        j = k - r * d
        out[r, j] = x[index[r], j]


@cuda.jit
def _take(x, index, out):
    for k in range(cuda.grid(1), index.shape[0], cuda.gridsize(1)):
        out[k] = x[index[k]]


@cuda.jit
def _count_nonfinite(flat, count):
    for i in range(cuda.grid(1), flat.shape[0], cuda.gridsize(1)):
        if not math.isfinite(flat[i]):
            count[0] = 1  # any thread may win: only "some" matters


def take_rows(x, index, out):
    """``out[k, :] = x[index[k], :]`` for a 2-D ``x`` (device arrays; ``index`` int64)."""
    size = index.shape[0] * x.shape[1]
    if size:
        _take_rows[grid(size), block()](x, index, out)


def take(x, index, out):
    """``out[k] = x[index[k]]`` for a 1-D ``x`` (integer labels)."""
    if index.shape[0]:
        _take[grid(index.shape[0]), block()](x, index, out)


def all_finite(flat):
    """True when a 1-D float device array holds no NaN or infinity."""
    if flat.shape[0] == 0:
        return True
    count = cuda.to_device(np.zeros(1, dtype=np.int32))
    _count_nonfinite[grid(flat.shape[0]), block()](flat, count)
    return int(count.copy_to_host()[0]) == 0
