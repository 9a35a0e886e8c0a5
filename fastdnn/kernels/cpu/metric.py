"""Metric kernels: per-batch counts and sums that metric objects accumulate over an epoch."""

from fastdnn.kernels.jit import jit


@jit(inline="always")  # a helper of other kernels: no compile of its own on a first run
def _argmax_row(row):
    """Index of the first maximum of a 1-D array (NumPy's tie rule)."""
    best = 0
    for j in range(1, row.shape[0]):
        if row[j] > row[best]:
            best = j
    return best


@jit
def count_sparse_matches(p, labels):
    """Rows where ``argmax(p) == label``."""
    hits = 0
    for i in range(p.shape[0]):
        if _argmax_row(p[i]) == labels[i]:
            hits += 1
    return hits


@jit
def count_categorical_matches(p, t):
    """Rows where ``argmax(p) == argmax(t)``."""
    hits = 0
    for i in range(p.shape[0]):
        if _argmax_row(p[i]) == _argmax_row(t[i]):
            hits += 1
    return hits


@jit
def count_binary_matches(p, t, threshold):
    """Elements where ``(p > threshold) == (t > threshold)`` (Keras's binary_accuracy)."""
    hits = 0
    n, d = p.shape
    for i in range(n):
        for j in range(d):
            if (p[i, j] > threshold) == (t[i, j] > threshold):
                hits += 1
    return hits


@jit
def count_equal(p, t):
    """Elements where ``p == t`` exactly (Keras's plain ``accuracy`` for non-classification)."""
    hits = 0
    n, d = p.shape
    for i in range(n):
        for j in range(d):
            if p[i, j] == t[i, j]:
                hits += 1
    return hits


@jit
def binary_confusion(p, t, threshold, out):
    """Add true positives, false positives and false negatives of ``p > threshold`` vs ``t`` to ``out[0:3]``."""
    n, d = p.shape
    tp = 0
    fp = 0
    fn = 0
    for i in range(n):
        for j in range(d):
            predicted = p[i, j] > threshold
            actual = t[i, j] > 0.5
            if predicted and actual:
                tp += 1
            elif predicted:
                fp += 1
            elif actual:
                fn += 1
    out[0] += tp
    out[1] += fp
    out[2] += fn


@jit
def sparse_confusion(p, labels, threshold, out):
    """As ``binary_confusion`` against ``one_hot(labels)``, without building the one-hot array."""
    n, d = p.shape
    tp = 0
    fp = 0
    fn = 0
    for i in range(n):
        for j in range(d):
            predicted = p[i, j] > threshold
            actual = j == labels[i]
            if predicted and actual:
                tp += 1
            elif predicted:
                fp += 1
            elif actual:
                fn += 1
    out[0] += tp
    out[1] += fp
    out[2] += fn


@jit
def sum_squared_error(p, t):
    total = 0.0
    n, d = p.shape
    for i in range(n):
        for j in range(d):
            diff = float(p[i, j]) - float(t[i, j])
            total += diff * diff
    return total


@jit
def sum_absolute_error(p, t):
    total = 0.0
    n, d = p.shape
    for i in range(n):
        for j in range(d):
            total += abs(float(p[i, j]) - float(t[i, j]))
    return total
