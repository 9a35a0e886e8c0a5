"""Pooling kernels (channels last): max and average over windows, and over whole samples (global).

A window of output ``(oy, ox)`` covers input rows ``oy sh - pad_top ... + ph - 1`` and columns
``ox sw - pad_left ... + pw - 1``, clipped to the input: padded positions take no part (max pooling
ignores them, as if they were -inf; average pooling divides by the number of real positions, as
Keras does). A 1-D pooling is the 2-D one with a height of 1.

Max pooling sends each output's gradient to the first position holding the window's maximum (scan
order: row, then column). The backward pass finds that position again by comparing the input with
the forward output, so the forward pass writes nothing but ``y``. A NaN is the maximum of its
window, so that NaNs propagate instead of being dropped.

The loops index flat views of the row-major arrays, channels innermost, with unsigned offsets (so
numba emits no negative-index wraparound test per element), so that they vectorize over the channels.
"""

import numpy as np

from fastdnn.kernels.jit import jit

_ZERO = np.float32(0.0)
_NONE = np.uint64(0xFFFFFFFFFFFFFFFF)  # "no position found"


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
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    channels = np.uint64(C)
    row_step = np.uint64(W * C)
    for b in range(n):
        for oy in range(oh):
            h0, h1 = _window(oy, sh, pad_top, ph, H)
            for ox in range(ow):
                w0, w1 = _window(ox, sw, pad_left, pw, W)
                out = np.uint64(((b * oh + oy) * ow + ox) * C)
                first = np.uint64(((b * H + h0) * W + w0) * C)
                if h1 - h0 == 2 and w1 - w0 == 2:
                    # a whole 2 x 2 window (the common pooling): one pass over the channels
                    right = first + channels
                    below = first + row_step
                    corner = below + channels
                    for c in range(channels):
                        m = xf[first + c]
                        v = xf[right + c]
                        m = v if (v > m or v != v) else m
                        v = xf[below + c]
                        m = v if (v > m or v != v) else m
                        v = xf[corner + c]
                        yf[out + c] = v if (v > m or v != v) else m
                    continue
                for c in range(channels):
                    yf[out + c] = xf[first + c]
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        src = np.uint64(((b * H + hi) * W + wi) * C)
                        for c in range(channels):
                            v = xf[src + c]
                            m = yf[out + c]
                            # A select, not a branch (random data mispredicts half the time);
                            # a NaN wins, so that it propagates.
                            yf[out + c] = v if (v > m or v != v) else m


@jit
def max_pool_backward(x, y, dLdY, ph, pw, sh, sw, pad_top, pad_left, dX):
    """``dX = 0``; each ``dL/dy`` is added at the first position of its window holding the maximum ``y``.

    ``y`` is the forward output. The window is scanned backwards keeping the last hit by a select,
    which leaves the first one, without a data-dependent branch. Offsets are unsigned and stepped,
    not recomputed from the indices (numba would test every signed index for wraparound).
    """
    n, H, W, C = x.shape
    _, oh, ow, _ = y.shape
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    gf = dLdY.reshape(-1)
    df = dX.reshape(-1)
    df[:] = 0
    channels = np.uint64(C)
    row_step = np.uint64(W * C)
    for b in range(n):
        for oy in range(oh):
            h0, h1 = _window(oy, sh, pad_top, ph, H)
            for ox in range(ow):
                w0, w1 = _window(ox, sw, pad_left, pw, W)
                out = np.uint64(((b * oh + oy) * ow + ox) * C)
                if h1 - h0 == 2 and w1 - w0 == 2:
                    # a whole 2 x 2 window (the common pooling): the scan below, unrolled
                    first = np.uint64(((b * H + h0) * W + w0) * C)
                    right = first + channels
                    below = first + row_step
                    corner = below + channels
                    for c in range(channels):
                        m = yf[out + c]
                        g = gf[out + c]
                        # the first position holding m, by selects scanning backwards (none: a NaN maximum)
                        at = corner + c if xf[corner + c] == m else _NONE
                        at = below + c if xf[below + c] == m else at
                        at = right + c if xf[right + c] == m else at
                        at = first + c if xf[first + c] == m else at
                        if at != _NONE:
                            df[at] += g
                    continue
                # the window's last position, channel 0
                last = np.uint64(((b * H + h1 - 1) * W + w1 - 1) * C)
                for c in range(channels):
                    m = yf[out + c]
                    first = _NONE
                    row = last + c
                    for _ in range(h0, h1):
                        at = row
                        for _ in range(w0, w1):
                            first = at if xf[at] == m else first
                            at -= channels
                        row -= row_step
                    if first != _NONE:  # a NaN maximum equals nothing: its gradient is dropped
                        df[first] += gf[out + c]


@jit
def avg_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, inv_count, y):
    """``y[b, oy, ox, c] = inv_count[oy, ox] * sum`` of ``x[b, :, :, c]`` over the window.

    ``inv_count[oy, ox]`` is ``1 / (number of real input positions in the window)``, in the array dtype.
    """
    n, H, W, C = x.shape
    _, oh, ow, _ = y.shape
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    channels = np.uint64(C)
    for b in range(n):
        for oy in range(oh):
            h0, h1 = _window(oy, sh, pad_top, ph, H)
            for ox in range(ow):
                w0, w1 = _window(ox, sw, pad_left, pw, W)
                out = np.uint64(((b * oh + oy) * ow + ox) * C)
                for c in range(channels):
                    yf[out + c] = 0
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        src = np.uint64(((b * H + hi) * W + wi) * C)
                        for c in range(channels):
                            yf[out + c] += xf[src + c]
                scale = inv_count[oy, ox]
                for c in range(channels):
                    yf[out + c] *= scale


@jit
def avg_pool_backward(dLdY, ph, pw, sh, sw, pad_top, pad_left, inv_count, dX):
    """``dX = 0``; each ``dL/dy`` times ``inv_count`` is added to every real position of its window."""
    n, H, W, C = dX.shape
    _, oh, ow, _ = dLdY.shape
    gf = dLdY.reshape(-1)
    df = dX.reshape(-1)
    df[:] = 0
    channels = np.uint64(C)
    for b in range(n):
        for oy in range(oh):
            h0, h1 = _window(oy, sh, pad_top, ph, H)
            for ox in range(ow):
                w0, w1 = _window(ox, sw, pad_left, pw, W)
                out = np.uint64(((b * oh + oy) * ow + ox) * C)
                scale = inv_count[oy, ox]
                for hi in range(h0, h1):
                    for wi in range(w0, w1):
                        dst = np.uint64(((b * H + hi) * W + wi) * C)
                        for c in range(channels):
                            df[dst + c] += gf[out + c] * scale


@jit
def global_max_forward(x, y):
    """``y[b, c] = max_s x[b, s, c]`` (``x`` (n, S, C): the spatial axes flattened into ``S``)."""
    n, S, C = x.shape
    for b in range(n):
        for c in range(C):
            y[b, c] = x[b, 0, c]
        for s in range(S):
            for c in range(C):
                v = x[b, s, c]
                if v > y[b, c] or v != v:
                    y[b, c] = v


@jit
def global_max_backward(x, y, dLdY, pending, dX):
    """``dX = 0``; ``dL/dy[b, c]`` is added at the first ``s`` where ``x[b, s, c]`` equals the maximum ``y[b, c]``."""
    n, S, C = x.shape
    dX[...] = 0
    for b in range(n):
        for c in range(C):
            pending[c] = dLdY[b, c]
        for s in range(S):
            for c in range(C):
                if x[b, s, c] == y[b, c]:
                    dX[b, s, c] += pending[c]
                    pending[c] = 0


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
