"""CUDA twins of ``kernels.cpu.pool``: max and average pooling (channels last), windowed and global.

Semantics are the CPU module's, element for element: a window of output ``(oy, ox)`` covers input
rows ``oy sh - pad_top ... + ph - 1`` and columns ``ox sw - pad_left ... + pw - 1`` clipped to the
input (padded positions take no part; averages divide by ``inv_count``, one over the real positions);
a NaN is the maximum of its window; max pooling's gradient goes to the first position (row, then
column; the first ``s`` for global pooling) whose value equals the forward maximum, and a NaN maximum
equals nothing, so its gradient is dropped.

Forward kernels run one thread per output element. The windowed backward kernels are gathers: one
thread per input element sums, in the CPU's order of addition (increasing ``(oy, ox)``), the
gradients of the windows that route to it, so that every element is written once, without atomics,
and the sums are bitwise the CPU's. Sums start from a zero of the array dtype (one compiled kernel
per dtype), as the CPU's do.
"""

import numpy as np
from numba import cuda

from fastdnn.kernels.cuda._launch import block, cached_factory, grid, unravel4


@cuda.jit(device=True)
def window_scalar(o, stride, pad, size, length):
    """``[start, stop)`` of the window of output ``o`` along one axis, clipped to ``[0, length)``."""
    start = o * stride - pad
    return max(start, 0), min(start + size, length)


@cuda.jit(device=True)
def covering_scalar(position, stride, pad, size, outputs):
    """``[first, stop)``: the outputs whose (unclipped) window along one axis contains input ``position``.

    Solves ``o stride - pad <= position < o stride - pad + size`` with non-negative operands only,
    so that integer division needs no rounding convention.
    """
    t = position + pad
    stop = min(t // stride + 1, outputs)
    low = t - size + 1
    first = 0 if low <= 0 else (low + stride - 1) // stride
    return first, stop


@cuda.jit(device=True)
def _routes_here(x, b, c, m, h0, w0, w1, hi, wi):
    """True when ``(hi, wi)`` is the first position of the window (from ``(h0, w0)``) holding ``m``.

    The caller has checked ``x[b, hi, wi, c] == m``; it remains to see that no earlier position does.
    """
    for h in range(h0, hi + 1):
        stop = wi if h == hi else w1
        for w in range(w0, stop):
            if x[b, h, w, c] == m:
                return False
    return True


@cuda.jit
def _max_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, y):
    n, oh, ow, C = y.shape
    H = x.shape[1]
    W = x.shape[2]
    for e in range(cuda.grid(1), n * oh * ow * C, cuda.gridsize(1)):
        b, oy, ox, c = unravel4(e, oh, ow, C)
        h0, h1 = window_scalar(oy, sh, pad_top, ph, H)
        w0, w1 = window_scalar(ox, sw, pad_left, pw, W)
        m = x[b, h0, w0, c]
        for hi in range(h0, h1):
            for wi in range(w0, w1):
                v = x[b, hi, wi, c]
                if v > m or v != v:  # a NaN wins, so that it propagates
                    m = v
        y[b, oy, ox, c] = m


@cached_factory
def _max_pool_backward_kernel(dtype):
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def max_pool_backward_gather(x, y, dLdY, ph, pw, sh, sw, pad_top, pad_left, dX):
        n, H, W, C = dX.shape
        oh = y.shape[1]
        ow = y.shape[2]
        for e in range(cuda.grid(1), n * H * W * C, cuda.gridsize(1)):
            b, hi, wi, c = unravel4(e, H, W, C)
            v = x[b, hi, wi, c]
            acc = zero
            oy0, oy1 = covering_scalar(hi, sh, pad_top, ph, oh)
            ox0, ox1 = covering_scalar(wi, sw, pad_left, pw, ow)
            for oy in range(oy0, oy1):
                h0, h1 = window_scalar(oy, sh, pad_top, ph, H)
                for ox in range(ox0, ox1):
                    m = y[b, oy, ox, c]
                    if v == m:  # cheap test first; then is no earlier position of the window equal?
                        w0, w1 = window_scalar(ox, sw, pad_left, pw, W)
                        if _routes_here(x, b, c, m, h0, w0, w1, hi, wi):
                            acc += dLdY[b, oy, ox, c]
            dX[b, hi, wi, c] = acc

    return max_pool_backward_gather


@cached_factory
def _avg_pool_forward_kernel(dtype):
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def avg_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, inv_count, y):
        n, oh, ow, C = y.shape
        H = x.shape[1]
        W = x.shape[2]
        for e in range(cuda.grid(1), n * oh * ow * C, cuda.gridsize(1)):
            b, oy, ox, c = unravel4(e, oh, ow, C)
            h0, h1 = window_scalar(oy, sh, pad_top, ph, H)
            w0, w1 = window_scalar(ox, sw, pad_left, pw, W)
            acc = zero
            for hi in range(h0, h1):
                for wi in range(w0, w1):
                    acc += x[b, hi, wi, c]
            y[b, oy, ox, c] = acc * inv_count[oy, ox]

    return avg_pool_forward


@cached_factory
def _avg_pool_backward_kernel(dtype):
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def avg_pool_backward_gather(dLdY, ph, pw, sh, sw, pad_top, pad_left, inv_count, dX):
        n, H, W, C = dX.shape
        oh = dLdY.shape[1]
        ow = dLdY.shape[2]
        for e in range(cuda.grid(1), n * H * W * C, cuda.gridsize(1)):
            b, hi, wi, c = unravel4(e, H, W, C)
            acc = zero
            oy0, oy1 = covering_scalar(hi, sh, pad_top, ph, oh)
            ox0, ox1 = covering_scalar(wi, sw, pad_left, pw, ow)
            for oy in range(oy0, oy1):
                for ox in range(ox0, ox1):
                    acc += dLdY[b, oy, ox, c] * inv_count[oy, ox]
            dX[b, hi, wi, c] = acc

    return avg_pool_backward_gather


@cuda.jit
def _global_max_forward(x, y):
    n, S, C = x.shape
    for e in range(cuda.grid(1), n * C, cuda.gridsize(1)):
        b = e // C
        c = e - b * C
        m = x[b, 0, c]
        for s in range(S):
            v = x[b, s, c]
            if v > m or v != v:
                m = v
        y[b, c] = m


@cached_factory
def _global_max_backward_kernel(dtype):
    zero = np.dtype(dtype).type(0)  # keeps the running value in the array dtype (a literal 0 would widen it)

    @cuda.jit
    def global_max_backward(x, y, dLdY, pending, dX):
        n, S, C = x.shape
        for e in range(cuda.grid(1), n * C, cuda.gridsize(1)):
            b = e // C
            c = e - b * C
            m = y[b, c]
            left = dLdY[b, c]  # the CPU's pending[c] for this sample
            for s in range(S):
                if x[b, s, c] == m:
                    dX[b, s, c] = left
                    left = zero
                else:
                    dX[b, s, c] = zero
            if b == n - 1:
                pending[c] = left  # what the CPU's serial loop over the samples leaves there

    return global_max_backward


@cached_factory
def _global_avg_forward_kernel(dtype):
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def global_avg_forward(x, inv_count, y):
        n, S, C = x.shape
        for e in range(cuda.grid(1), n * C, cuda.gridsize(1)):
            b = e // C
            c = e - b * C
            acc = zero
            for s in range(S):
                acc += x[b, s, c]
            y[b, c] = acc * inv_count

    return global_avg_forward


@cuda.jit
def _global_avg_backward(dLdY, inv_count, dX):
    n, S, C = dX.shape
    for e in range(cuda.grid(1), n * S * C, cuda.gridsize(1)):
        c = e % C
        b = e // (S * C)
        dX[b, (e // C) % S, c] = dLdY[b, c] * inv_count


def _name(array):
    return np.dtype(array.dtype).name


def max_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, y):
    """``y[b, oy, ox, c] = max`` of ``x[b, :, :, c]`` over the window (``x`` (n, H, W, C), ``y`` (n, oh, ow, C))."""
    if y.size == 0:
        return
    _max_pool_forward[grid(y.size), block()](x, ph, pw, sh, sw, pad_top, pad_left, y)


def max_pool_backward(x, y, dLdY, ph, pw, sh, sw, pad_top, pad_left, dX):
    """``dX``: each ``dL/dy`` at the first position of its window holding the maximum ``y``, zero elsewhere.

    A gather over the windows covering each input element (see the module docstring).
    """
    if dX.size == 0:
        return
    _max_pool_backward_kernel(_name(dX))[grid(dX.size), block()](x, y, dLdY, ph, pw, sh, sw, pad_top, pad_left, dX)


def avg_pool_forward(x, ph, pw, sh, sw, pad_top, pad_left, inv_count, y):
    """``y[b, oy, ox, c] = inv_count[oy, ox] * sum`` of ``x[b, :, :, c]`` over the window.

    ``inv_count`` (oh, ow) is one over the number of real input positions of each window.
    """
    if y.size == 0:
        return
    _avg_pool_forward_kernel(_name(y))[grid(y.size), block()](x, ph, pw, sh, sw, pad_top, pad_left, inv_count, y)


def avg_pool_backward(dLdY, ph, pw, sh, sw, pad_top, pad_left, inv_count, dX):
    """``dX[b, h, w, c]`` = the sum of ``dL/dy * inv_count`` over the windows containing ``(h, w)``."""
    if dX.size == 0:
        return
    _avg_pool_backward_kernel(_name(dX))[grid(dX.size), block()](dLdY, ph, pw, sh, sw, pad_top, pad_left, inv_count, dX)


def global_max_forward(x, y):
    """``y[b, c] = max_s x[b, s, c]`` (``x`` (n, S, C): the spatial axes flattened into ``S``)."""
    if y.size == 0:
        return
    _global_max_forward[grid(y.size), block()](x, y)


def global_max_backward(x, y, dLdY, pending, dX):
    """``dX = 0``, then ``dL/dy[b, c]`` at the first ``s`` where ``x[b, s, c]`` equals the maximum ``y[b, c]``.

    One thread per ``(b, c)``, so the samples run in parallel: each keeps the CPU's ``pending[c]``
    (the gradient not yet routed) in a register, and the last sample's thread leaves ``pending[c]``
    as the CPU's serial loop leaves it (0, or ``dL/dy[n-1, c]`` when that maximum was a NaN).
    """
    if dX.size == 0:
        return
    _global_max_backward_kernel(_name(dX))[grid(y.size), block()](x, y, dLdY, pending, dX)


def global_avg_forward(x, inv_count, y):
    """``y[b, c] = inv_count * sum_s x[b, s, c]`` with ``inv_count = 1 / S`` in the array dtype."""
    if y.size == 0:
        return
    _global_avg_forward_kernel(_name(y))[grid(y.size), block()](x, inv_count, y)


def global_avg_backward(dLdY, inv_count, dX):
    """``dX[b, s, c] = inv_count * dL/dy[b, c]`` for every ``s``."""
    if dX.size == 0:
        return
    _global_avg_backward[grid(dX.size), block()](dLdY, inv_count, dX)
