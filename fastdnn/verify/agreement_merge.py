"""Agreement cases of the merge kernels (``fastdnn.kernels.cuda.merge`` against the CPU twins)."""

import numpy as np


def cases(rng, dtype, n, d, k):
    """Yield ``(name, family, function, args, output positions)`` in the format of `fastdnn.verify.agreement._cases`."""
    scalar = np.dtype(dtype).type

    def arr(*shape):
        return rng.uniform(-2.0, 2.0, size=shape).astype(dtype)

    size = n * d
    a, b = arr(size), arr(size)
    for op, label in ((0, "add"), (1, "subtract"), (2, "multiply")):
        yield f"combine[{label}]", "merge", "combine", [a, b, op, np.zeros(size, dtype)], [3]
    yield "copy", "merge", "copy", [a, np.zeros(size, dtype)], [1]
    yield "scale", "merge", "scale", [a, scalar(-0.5), np.zeros(size, dtype)], [2]
    for maximum in (True, False):
        running, winner = arr(size), np.zeros(size, np.int32)
        b[:3] = running[:3]  # ties keep the earlier input
        yield f"extreme[{'max' if maximum else 'min'}]", "merge", "extreme", [running, winner, b, 1, maximum], [0, 1]
        yield f"extreme[{'max' if maximum else 'min'}, first input]", "merge", "extreme", [running, winner, b, 0, maximum], [0, 1]
    winner = rng.integers(0, 3, size).astype(np.int32)
    yield "routed", "merge", "routed", [a, winner, 1, np.zeros(size, dtype)], [3]
    x3, out3 = arr(n, 2, k), arr(n, d + 2, k)
    yield "place", "merge", "place", [x3, d, out3], [2]
    yield "take", "merge", "take", [out3, d, np.zeros((n, 2, k), dtype)], [2]
    for ta in (False, True):
        for tb in (False, True):
            left = arr(n, k, 3) if ta else arr(n, 3, k)
            right = arr(n, 2, k) if tb else arr(n, k, 2)
            yield f"batched_matmul[{'T' if ta else 'N'}{'T' if tb else 'N'}]", "merge", "batched_matmul", [left, right, np.zeros((n, 3, 2), dtype), ta, tb], [2]
    eps = scalar(1e-12)
    for axis in (1, 2):
        x = arr(n, 3, k)
        x[0] = 0.0  # a zero row: the clamped norm
        other = k if axis == 1 else 3
        yield f"l2_normalize[axis={axis}]", "merge", "l2_normalize", [x, axis, eps, np.zeros_like(x), np.zeros((n, other), dtype)], [3, 4]
        inv = (1.0 / np.sqrt(np.maximum((x.astype(np.float64) ** 2).sum(axis=axis), 1e-12))).astype(dtype)
        yield (f"l2_normalize_backward[axis={axis}]", "merge", "l2_normalize_backward",
               [x, inv, axis, eps, arr(n, 3, k), np.zeros_like(x)], [5])
