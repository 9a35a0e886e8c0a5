"""CPU-vs-CUDA agreement cases of the pooling kernels (``kernels/*/pool.py``), for `fastdnn.verify.agreement`.

Every public function, at small shapes: windows that tile the input, overlap (stride < pool size),
skip positions (stride > pool size), and "same" padding with odd sizes (clipped border windows);
1-D as height 1. Max pooling runs on small integers, so that windows hold tied maxima (the gradient
must go to the first), and on such inputs with NaNs (which win the maximum and drop their gradient);
global max pooling on random values too.
"""

import numpy as np


def geometries():
    """``(label, input shape (n, H, W, C), (ph, pw, sh, sw, pad_top, pad_left), (oh, ow))``."""
    from fastdnn.layers.conv import padding_amounts

    specs = [
        # label, (n, H, W, C), (ph, pw), (sh, sw), padding
        ("2d valid 2x2", (2, 4, 4, 2), (2, 2), (2, 2), "valid"),
        ("2d valid overlap", (2, 5, 4, 2), (3, 2), (1, 1), "valid"),
        ("2d same odd stride 2", (2, 5, 5, 2), (3, 3), (2, 2), "same"),
        ("2d valid stride > pool", (1, 7, 5, 2), (2, 1), (3, 2), "valid"),
        ("1d same stride 2", (2, 1, 7, 3), (1, 2), (1, 2), "same"),
        ("1d valid overlap", (2, 1, 6, 2), (1, 3), (1, 1), "valid"),
    ]
    for label, shape, (ph, pw), (sh, sw), padding in specs:
        if label.startswith("1d"):
            pad_top, oh = 0, 1
        else:
            pad_top, oh = padding_amounts(shape[1], ph, sh, 1, padding)
        pad_left, ow = padding_amounts(shape[2], pw, sw, 1, padding)
        yield label, shape, (ph, pw, sh, sw, pad_top, pad_left), (oh, ow)


def inverse_counts(shape, geometry, out, dtype):
    """``1 / (real input positions)`` of each window, as `fastdnn.layers.pooling` builds it."""
    _, H, W, _ = shape
    ph, pw, sh, sw, pad_top, pad_left = geometry
    oh, ow = out
    rows = np.clip(np.arange(oh) * sh - pad_top + ph, 0, H) - np.clip(np.arange(oh) * sh - pad_top, 0, H)
    cols = np.clip(np.arange(ow) * sw - pad_left + pw, 0, W) - np.clip(np.arange(ow) * sw - pad_left, 0, W)
    return (1.0 / np.outer(rows, cols)).astype(dtype)


def cases(rng, dtype, n, d, k):
    """Yield ``(name, family, function, args, output positions)`` as `fastdnn.verify.agreement._cases` does.

    The shapes are fixed per geometry and small (the simulator runs every CUDA thread as a Python
    thread), so ``n``, ``d`` and ``k`` are not used.
    """
    from fastdnn.kernels.cpu import pool

    def arr(*shape):
        return rng.uniform(-2.0, 2.0, size=shape).astype(dtype)

    def ties(*shape):
        return rng.integers(-2, 3, size=shape).astype(dtype)

    for label, shape, geometry, (oh, ow) in geometries():
        batch, _, _, C = shape
        out_shape = (batch, oh, ow, C)
        inputs = [("ties", ties(*shape))]
        with_nan = ties(*shape)
        with_nan.reshape(-1)[[1, 6]] = np.nan
        inputs.append(("nan", with_nan))
        for kind, x in inputs:
            y = np.zeros(out_shape, dtype)
            pool.max_pool_forward(x, *geometry, y)
            yield f"max_pool_forward[{label},{kind}]", "pool", "max_pool_forward", [x, *geometry, np.full(out_shape, 7.0, dtype)], [7]
            yield (f"max_pool_backward[{label},{kind}]", "pool", "max_pool_backward",
                   [x, y, arr(*out_shape), *geometry, np.full(shape, 7.0, dtype)], [9])
        inv = inverse_counts(shape, geometry, (oh, ow), dtype)
        yield f"avg_pool_forward[{label}]", "pool", "avg_pool_forward", [arr(*shape), *geometry, inv, np.full(out_shape, 7.0, dtype)], [8]
        yield f"avg_pool_backward[{label}]", "pool", "avg_pool_backward", [arr(*out_shape), *geometry, inv, np.full(shape, 7.0, dtype)], [8]
    # global pooling over (n, S, C), S the flattened spatial axes
    batch, S, C = 3, 5, 4
    inv_count = np.dtype(dtype).type(1.0 / S)
    with_nan = rng.integers(-2, 3, size=(batch, S, C)).astype(dtype)
    with_nan[2, 1, 0] = np.nan  # in the last sample: its gradient stays pending
    with_nan[0, 3, 2] = np.nan
    for kind, x in (("ties", rng.integers(-2, 3, size=(batch, S, C)).astype(dtype)), ("random", arr(batch, S, C)), ("nan", with_nan)):
        y = np.zeros((batch, C), dtype)
        pool.global_max_forward(x, y)
        yield f"global_max_forward[{kind}]", "pool", "global_max_forward", [x, np.full((batch, C), 7.0, dtype)], [1]
        yield (f"global_max_backward[{kind}]", "pool", "global_max_backward",
               [x, y, arr(batch, C), np.full(C, 7.0, dtype), np.full((batch, S, C), 7.0, dtype)], [3, 4])
    yield "global_avg_forward", "pool", "global_avg_forward", [arr(batch, S, C), inv_count, np.full((batch, C), 7.0, dtype)], [2]
    yield "global_avg_backward", "pool", "global_avg_backward", [arr(batch, C), inv_count, np.full((batch, S, C), 7.0, dtype)], [2]
