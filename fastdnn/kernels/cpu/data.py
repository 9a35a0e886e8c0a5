"""Data movement kernels: gathering a shuffled batch into a reused buffer."""

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
    """True when a 1-D float array holds no NaN or infinity (no temporary boolean array).

    ``v * 0`` is 0 for a finite ``v`` and NaN for infinities and NaN, so a sum of them is a
    reduction LLVM vectorizes (an early ``return`` per element would not: 2x slower over 47M
    floats); blocks of 4096 still stop early at the first bad block. Each block is a view indexed
    from 0: indexed by ``start + i``, numba tests every index for negative wraparound, and that
    test stops the vectorizer (47M float32, the MNIST training set: 55 ms, against 8 ms).
    """
    n = flat.shape[0]
    for start in range(0, n, 4096):
        block = flat[start : start + 4096]
        acc = block[0] * 0
        for i in range(block.shape[0]):
            acc += block[i] * 0
        if acc != 0:
            return False
    return True
