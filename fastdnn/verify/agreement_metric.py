"""CPU-vs-CUDA agreement cases of the metric kernels (``kernels/*/metric.py``), for `verify.agreement`.

Predictions on a coarse grid (multiples of 0.25), so that rows hold tied maxima (the first wins on
both sides), elements equal their targets, and values sit exactly on the threshold (``>`` is strict).
Targets: one-hot rows, labels, and 0/1 or soft values.
"""

import numpy as np


def cases(rng, dtype, n, d, k):
    """Yield ``(name, family, function, args, output positions)`` in the format of `verify.agreement._cases`."""
    p = (rng.integers(0, 5, size=(n, d)) / 4).astype(dtype)
    labels = rng.integers(0, d, size=n).astype(np.int64)
    one_hot = np.eye(d, dtype=dtype)[labels]
    soft = (rng.integers(0, 5, size=(n, d)) / 4).astype(dtype)
    yield "count_sparse_matches", "metric", "count_sparse_matches", [p, labels], []
    yield "count_categorical_matches", "metric", "count_categorical_matches", [p, one_hot], []
    yield "count_categorical_matches[soft]", "metric", "count_categorical_matches", [p, soft], []
    for threshold in (0.5, 0.25):
        yield f"count_binary_matches[threshold={threshold}]", "metric", "count_binary_matches", [p, soft, threshold], []
        yield (f"binary_confusion[threshold={threshold}]", "metric", "binary_confusion",
               [p, soft, threshold, np.array([3, 1, 2], np.int64)], [3])
        yield (f"sparse_confusion[threshold={threshold}]", "metric", "sparse_confusion",
               [p, labels, threshold, np.array([3, 1, 2], np.int64)], [3])
    yield "count_equal", "metric", "count_equal", [p, soft], []
    x = rng.uniform(-2.0, 2.0, size=(n, d)).astype(dtype)
    yield "sum_squared_error", "metric", "sum_squared_error", [x, soft], []
    yield "sum_absolute_error", "metric", "sum_absolute_error", [x, soft], []
