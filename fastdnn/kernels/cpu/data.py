"""Data movement kernels: gathering a shuffled batch into a reused buffer."""

import math

from fastdnn.kernels.jit import jit


@jit
def take_rows(x, index, out):
    """``out[k, :] = x[index[k], :]`` for a 2-D ``x`` (callers flatten trailing axes).

    An explicit inner loop rather than ``out[k, :] = x[index[k], :]``: the slice assignment's
    broadcasting error path took numba about 4 s to compile (on every first run), this loop 0.2 s.
    """
    d = x.shape[1]
    for k in range(index.shape[0]):
        row = index[k]
        for j in range(d):
            out[k, j] = x[row, j]


@jit
def take(x, index, out):
    """``out[k] = x[index[k]]`` for a 1-D ``x`` (integer labels)."""
    for k in range(index.shape[0]):
        out[k] = x[index[k]]


@jit
def all_finite(flat):
    """True when a 1-D float array holds no NaN or infinity (no temporary boolean array)."""
    for i in range(flat.shape[0]):
        if not math.isfinite(flat[i]):
            return False
    return True
