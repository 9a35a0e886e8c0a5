"""Pooling kernels (channels last): max and average over windows, and over whole samples (global).

A window of output ``(oy, ox)`` covers input rows ``oy sh - pad_top ... + ph - 1`` and columns
``ox sw - pad_left ... + pw - 1``, clipped to the input: padded positions take no part (max pooling
ignores them, as if they were -inf; average pooling divides by the number of real positions, as
Keras does). A 1-D pooling is the 2-D one with a height of 1.

Max pooling sends each output's gradient to the first position holding the window's maximum (scan
order: row, then column). The backward pass finds that position again from the input rather than
storing it, so the forward pass writes nothing but ``y``. A NaN is the maximum of its window, so
that NaNs propagate instead of being dropped.
"""

import math

from fastdnn.kernels.jit import jit


@jit
def _window(o, stride, pad, size, length):
    """``[start, stop)`` of the window of output ``o`` along one axis, clipped to ``[0, length)``."""
    start = o * stride - pad
    return max(start, 0), min(start + size, length)


@jit
def max_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, y):
    """``y[b, oy, ox, c] = max`` of ``x[b, :, :, c]`` over the window (``x`` (n, H, W, C), ``y`` (n, oh, ow, C))."""
    n, H, W, C = x.shape
    _, oh, ow, _ = y.shape
    for b in range(n):
        for oy in range(oh):
            h0, h1 = _window(oy, sh, pad_top, ph, H)
            for ox in range(ow):
                w0, w1 = _window(ox, sw, pad_left, pw, W)
                out = y[b, oy, ox]
                out[:] = x[b, h0, w0]
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        row = x[b, hi, wi]
                        for c in range(C):
                            v = row[c]
                            if v > out[c] or math.isnan(v):
                                out[c] = v


@jit
def max_pool_backward(x, dLdY, ph, pw, sh, sw, pad_top, pad_left, dX):
    """``dX = 0``; each ``dL/dy`` is added at the position of its window's (first) maximum in ``x``."""
    n, H, W, C = x.shape
    _, oh, ow, _ = dLdY.shape
    dX[...] = 0
    for b in range(n):
        for oy in range(oh):
            h0, h1 = _window(oy, sh, pad_top, ph, H)
            for ox in range(ow):
                w0, w1 = _window(ox, sw, pad_left, pw, W)
                for c in range(C):
                    best = x[b, h0, w0, c]
                    bh, bw = h0, w0
                    for hi in range(h0, h1):
                        for wi in range(w0, w1):
                            v = x[b, hi, wi, c]
                            if (v > best or math.isnan(v)) and not math.isnan(best):
                                best = v
                                bh, bw = hi, wi
                    dX[b, bh, bw, c] += dLdY[b, oy, ox, c]


@jit
def avg_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, inv_count, y):
    """``y[b, oy, ox, c] = inv_count[oy, ox] * sum`` of ``x[b, :, :, c]`` over the window.

    ``inv_count[oy, ox]`` is ``1 / (number of real input positions in the window)``, in the array dtype.
    """
    n, H, W, C = x.shape
    _, oh, ow, _ = y.shape
    for b in range(n):
        for oy in range(oh):
            h0, h1 = _window(oy, sh, pad_top, ph, H)
            for ox in range(ow):
                w0, w1 = _window(ox, sw, pad_left, pw, W)
                out = y[b, oy, ox]
                out[:] = 0
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        row = x[b, hi, wi]
                        for c in range(C):
                            out[c] += row[c]
                scale = inv_count[oy, ox]
                for c in range(C):
                    out[c] *= scale


@jit
def avg_pool_backward(dLdY, ph, pw, sh, sw, pad_top, pad_left, inv_count, dX):
    """``dX = 0``; each ``dL/dy`` times ``inv_count`` is added to every real position of its window."""
    n, H, W, C = dX.shape
    _, oh, ow, _ = dLdY.shape
    dX[...] = 0
    for b in range(n):
        for oy in range(oh):
            h0, h1 = _window(oy, sh, pad_top, ph, H)
            for ox in range(ow):
                w0, w1 = _window(ox, sw, pad_left, pw, W)
                scale = inv_count[oy, ox]
                g = dLdY[b, oy, ox]
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        row = dX[b, hi, wi]
                        for c in range(C):
                            row[c] += g[c] * scale


@jit
def global_max_forward(x, y):
    """``y[b, c] = max_s x[b, s, c]`` (``x`` (n, S, C): the spatial axes flattened into ``S``)."""
    n, S, C = x.shape
    for b in range(n):
        out = y[b]
        out[:] = x[b, 0]
        for s in range(S):
            row = x[b, s]
            for c in range(C):
                v = row[c]
                if v > out[c] or math.isnan(v):
                    out[c] = v


@jit
def global_max_backward(x, dLdY, dX):
    """``dX = 0``; ``dL/dy[b, c]`` is added at the first ``s`` where ``x[b, s, c]`` is the maximum."""
    n, S, C = x.shape
    dX[...] = 0
    for b in range(n):
        for c in range(C):
            best = x[b, 0, c]
            where = 0
            for s in range(S):
                v = x[b, s, c]
                if (v > best or math.isnan(v)) and not math.isnan(best):
                    best = v
                    where = s
            dX[b, where, c] = dLdY[b, c]


@jit
def global_avg_forward(x, inv_count, y):
    """``y[b, c] = inv_count * sum_s x[b, s, c]`` with ``inv_count = 1 / S`` in the array dtype."""
    n, S, C = x.shape
    for b in range(n):
        out = y[b]
        out[:] = 0
        for s in range(S):
            row = x[b, s]
            for c in range(C):
                out[c] += row[c]
        for c in range(C):
            out[c] *= inv_count


@jit
def global_avg_backward(dLdY, inv_count, dX):
    """``dX[b, s, c] = inv_count * dL/dy[b, c]`` for every ``s``."""
    n, S, C = dX.shape
    for b in range(n):
        g = dLdY[b]
        for s in range(S):
            row = dX[b, s]
            for c in range(C):
                row[c] = g[c] * inv_count
