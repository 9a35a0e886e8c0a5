"""CUDA forms of ``kernels.cpu.metric``: the same counts, accumulated in a device vector.

The CPU kernels return a batch's count to the host; on the device that would cost a copy and a wait
per batch. Here ``add_counts(kind, p, t, parameter, rows, counts)`` adds a batch's counts to the
float64 device vector ``counts`` (laid out as the metric's ``counts()``), and the host reads the
vector only when it shows a value (the end of an epoch, or a progress bar that asks per batch).

Each kind is two launches: one thread per row writes the row's contributions to ``rows`` (n, width),
then one block per count sums its column by a tree, in a fixed order (the same batch always gives the
same sum; integer counts are exact in float64 up to 2**53).

Kinds and what each adds to ``counts``:

- ``equal``: ``[elements where p == t, elements]`` (Keras's plain ``accuracy``)
- ``binary``: ``[elements where (p > threshold) == (t > threshold), elements]``
- ``categorical``: ``[rows where argmax p == argmax t, rows]``
- ``sparse``: ``[rows where argmax p == label, rows]``
- ``squared_error`` / ``absolute_error``: ``[sum of (p - t)**2 or |p - t|, elements]``
- ``confusion`` / ``sparse_confusion``: ``[tp, fp, fn]`` of ``p > threshold`` against ``t > 0.5``
  (or against ``one_hot(labels)``)
"""

import numpy as np
from numba import cuda

from fastdnn.kernels.cuda._launch import block, column_totals, grid


@cuda.jit(device=True)
def _argmax(a, i):
    """Column of the first maximum of row ``i`` (NumPy's tie rule, as the CPU's ``_argmax_row``)."""
    best = 0
    for j in range(1, a.shape[1]):
        if a[i, j] > a[i, best]:
            best = j
    return best


@cuda.jit
def _equal_rows(p, t, threshold, rows):
    n, d = p.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        hits = 0
        for j in range(d):
            if p[i, j] == t[i, j]:
                hits += 1
        rows[i, 0] = hits
        rows[i, 1] = d


@cuda.jit
def _binary_rows(p, t, threshold, rows):
    n, d = p.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        hits = 0
        for j in range(d):
            if (p[i, j] > threshold) == (t[i, j] > threshold):
                hits += 1
        rows[i, 0] = hits
        rows[i, 1] = d


@cuda.jit
def _categorical_rows(p, t, threshold, rows):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        rows[i, 0] = 1.0 if _argmax(p, i) == _argmax(t, i) else 0.0
        rows[i, 1] = 1.0


@cuda.jit
def _sparse_rows(p, labels, threshold, rows):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        rows[i, 0] = 1.0 if _argmax(p, i) == labels[i] else 0.0
        rows[i, 1] = 1.0


@cuda.jit
def _squared_error_rows(p, t, threshold, rows):
    n, d = p.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        total = 0.0
        for j in range(d):
            diff = float(p[i, j]) - float(t[i, j])
            total += diff * diff
        rows[i, 0] = total
        rows[i, 1] = d


@cuda.jit
def _absolute_error_rows(p, t, threshold, rows):
    n, d = p.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        total = 0.0
        for j in range(d):
            total += abs(float(p[i, j]) - float(t[i, j]))
        rows[i, 0] = total
        rows[i, 1] = d


@cuda.jit(device=True)
def _tally(predicted, actual, counts):
    """``counts`` (tp, fp, fn) after one decision ``predicted`` against the truth ``actual``."""
    tp, fp, fn = counts
    if predicted and actual:
        return tp + 1, fp, fn
    if predicted:
        return tp, fp + 1, fn
    return tp, fp, fn + (1 if actual else 0)


@cuda.jit
def _confusion_rows(p, t, threshold, rows):
    n, d = p.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        counts = (0, 0, 0)
        for j in range(d):
            counts = _tally(p[i, j] > threshold, t[i, j] > 0.5, counts)
        rows[i, 0], rows[i, 1], rows[i, 2] = counts


@cuda.jit
def _sparse_confusion_rows(p, labels, threshold, rows):
    n, d = p.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        counts = (0, 0, 0)
        for j in range(d):
            counts = _tally(p[i, j] > threshold, j == labels[i], counts)
        rows[i, 0], rows[i, 1], rows[i, 2] = counts


#: kind -> (row kernel, counts per row)
KINDS = {
    "equal": (_equal_rows, 2),
    "binary": (_binary_rows, 2),
    "categorical": (_categorical_rows, 2),
    "sparse": (_sparse_rows, 2),
    "squared_error": (_squared_error_rows, 2),
    "absolute_error": (_absolute_error_rows, 2),
    "confusion": (_confusion_rows, 3),
    "sparse_confusion": (_sparse_confusion_rows, 3),
}


def width(kind):
    """Counts per row (and the length of ``counts``) of a kind."""
    return KINDS[kind][1]


def add_counts(kind, p, t, threshold, rows, counts):
    """Add the counts of predictions ``p`` (n, d) against targets ``t`` (n, d), or labels (n,) for the
    sparse kinds, to the float64 device vector ``counts``; ``rows`` is float64 scratch of at least
    (n, width(kind)).
    """
    n = p.shape[0]
    if n == 0:
        return
    kernel = KINDS[kind][0]
    scratch = rows[:n]
    kernel[grid(n), block()](p, t, float(threshold), scratch)
    column_totals(scratch, counts, True)


# -- the CPU module's functions, same names and signatures (for agreement checks and one-off counts;
# -- each allocates and waits for its result, which `add_counts` avoids in training)


def _counted(kind, p, t, threshold=0.0):
    n = p.shape[0]
    rows = cuda.device_array((max(n, 1), width(kind)), np.float64)
    counts = cuda.to_device(np.zeros(width(kind)))
    add_counts(kind, p, t, threshold, rows, counts)
    return counts.copy_to_host()


def count_sparse_matches(p, labels):
    return int(_counted("sparse", p, labels)[0])


def count_categorical_matches(p, t):
    return int(_counted("categorical", p, t)[0])


def count_binary_matches(p, t, threshold):
    return int(_counted("binary", p, t, threshold)[0])


def count_equal(p, t):
    return int(_counted("equal", p, t)[0])


def sum_squared_error(p, t):
    return float(_counted("squared_error", p, t)[0])


def sum_absolute_error(p, t):
    return float(_counted("absolute_error", p, t)[0])


@cuda.jit
def _add_into(out, counts):
    for j in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        out[j] += counts[j]


def _add_confusion(kind, p, t, threshold, out):
    counts = cuda.to_device(_counted(kind, p, t, threshold).astype(np.dtype(out.dtype)))
    _add_into[1, block()](out, counts)


def binary_confusion(p, t, threshold, out):
    """Add tp, fp, fn of ``p > threshold`` against ``t > 0.5`` to the device vector ``out[0:3]``."""
    _add_confusion("confusion", p, t, threshold, out)


def sparse_confusion(p, labels, threshold, out):
    """As `binary_confusion` against ``one_hot(labels)``."""
    _add_confusion("sparse_confusion", p, labels, threshold, out)
