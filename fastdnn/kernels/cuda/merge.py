"""CUDA twins of ``kernels.cpu.merge``: the same names and signatures, on device arrays.

Elementwise kernels are grid-stride loops over flat arrays; `batched_matmul` gives one thread per
output element (merge products are small: a Dot of two feature vectors); the L2 normalization one
thread per normalized row.
"""

import math

from numba import cuda

from fastdnn.kernels.cpu.merge import ADD, MAXIMUM, MINIMUM, MULTIPLY, SUBTRACT  # noqa: F401 - the shared op codes
from fastdnn.kernels.cuda._launch import block, grid


@cuda.jit
def _combine(a, b, op, out):
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        if op == 0:
            out[i] = a[i] + b[i]
        elif op == 1:
            out[i] = a[i] - b[i]
        else:
            out[i] = a[i] * b[i]


def combine(a, b, op, out):
    """``out = a (op) b`` elementwise for op ADD, SUBTRACT or MULTIPLY (1-D arrays, ``out`` may be ``a``)."""
    if a.shape[0]:
        _combine[grid(a.shape[0]), block()](a, b, op, out)


@cuda.jit
def _copy(a, out):
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        out[i] = a[i]


def copy(a, out):
    """``out = a`` (1-D arrays)."""
    if a.shape[0]:
        _copy[grid(a.shape[0]), block()](a, out)


@cuda.jit
def _scale(a, factor, out):
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        out[i] = a[i] * factor


def scale(a, factor, out):
    """``out = factor * a`` (``factor`` in the array dtype)."""
    if a.shape[0]:
        _scale[grid(a.shape[0]), block()](a, factor, out)


@cuda.jit
def _extreme(out, winner, x, index, maximum):
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        if index == 0 or (maximum and x[i] > out[i]) or (not maximum and x[i] < out[i]):
            out[i] = x[i]
            winner[i] = index


def extreme(out, winner, x, index, maximum):
    """Fold input ``index`` into the running maximum (minimum) ``out`` (input 0 starts it), ``winner``
    recording who holds it."""
    if x.shape[0]:
        _extreme[grid(x.shape[0]), block()](out, winner, x, index, maximum)


@cuda.jit
def _routed(g, winner, index, dX):
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        dX[i] = g[i] if winner[i] == index else g.dtype.type(0)


def routed(g, winner, index, dX):
    """``dX = g`` where input ``index`` won the maximum/minimum, else 0."""
    if g.shape[0]:
        _routed[grid(g.shape[0]), block()](g, winner, index, dX)


@cuda.jit
def _place(x, offset, out):
    length, inner = x.shape[1], x.shape[2]
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i = e % inner
        t = e // inner
        out[t // length, offset + t % length, i] = x[t // length, t % length, i]


def place(x, offset, out):
    """``out[:, offset:offset + len, :] = x`` for ``x`` of shape ``(outer, len, inner)``."""
    if x.size:
        _place[grid(x.size), block()](x, offset, out)


@cuda.jit
def _take(g, offset, dX):
    length, inner = dX.shape[1], dX.shape[2]
    for e in range(cuda.grid(1), dX.size, cuda.gridsize(1)):
        i = e % inner
        t = e // inner
        dX[t // length, t % length, i] = g[t // length, offset + t % length, i]


def take(g, offset, dX):
    """``dX = g[:, offset:offset + len, :]``: an input's part of the concatenation's gradient."""
    if dX.size:
        _take[grid(dX.size), block()](g, offset, dX)


@cuda.jit
def _batched_matmul(a, b, out, trans_a, trans_b):
    rows, cols = out.shape[1], out.shape[2]
    depth = a.shape[1] if trans_a else a.shape[2]
    for e in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        q = e % cols
        t = e // cols
        p = t % rows
        i = t // rows
        total = out.dtype.type(0)  # not out[...] * 0: the buffer may hold inf or NaN before it is written
        for k in range(depth):
            left = a[i, k, p] if trans_a else a[i, p, k]
            right = b[i, q, k] if trans_b else b[i, k, q]
            total += left * right
        out[i, p, q] = total


def batched_matmul(a, b, out, trans_a, trans_b):
    """``out[i] = op(a[i]) op(b[i])`` per sample of 3-D arrays, ``op`` transposing where asked."""
    if out.size:
        _batched_matmul[grid(out.size), block()](a, b, out, trans_a, trans_b)


@cuda.jit(device=True)
def _at(x, i, c, r, axis):
    return x[i, c, r] if axis == 1 else x[i, r, c]


@cuda.jit
def _l2_normalize(x, axis, epsilon, out, inv_norm):
    others = inv_norm.shape[1]
    length = x.shape[1] if axis == 1 else x.shape[2]
    for e in range(cuda.grid(1), inv_norm.size, cuda.gridsize(1)):
        i = e // others
        r = e % others
        total = x.dtype.type(0)
        for c in range(length):
            v = _at(x, i, c, r, axis)
            total += v * v
        factor = x.dtype.type(1) / math.sqrt(max(total, epsilon))
        inv_norm[i, r] = factor
        for c in range(length):
            if axis == 1:
                out[i, c, r] = x[i, c, r] * factor
            else:
                out[i, r, c] = x[i, r, c] * factor


def l2_normalize(x, axis, epsilon, out, inv_norm):
    """``x`` (3-D) divided by ``sqrt(max(sum x^2, epsilon))`` along ``axis`` (1 or 2); ``inv_norm`` keeps the factors."""
    if inv_norm.size:
        _l2_normalize[grid(inv_norm.size), block()](x, axis, epsilon, out, inv_norm)


@cuda.jit
def _l2_normalize_backward(x, inv_norm, axis, epsilon, g, dX):
    others = inv_norm.shape[1]
    length = x.shape[1] if axis == 1 else x.shape[2]
    for e in range(cuda.grid(1), inv_norm.size, cuda.gridsize(1)):
        i = e // others
        r = e % others
        factor = inv_norm[i, r]
        total = x.dtype.type(0)
        dot = x.dtype.type(0)
        for c in range(length):
            v = _at(x, i, c, r, axis)
            total += v * v
            dot += v * _at(g, i, c, r, axis)
        clamped = total <= epsilon
        for c in range(length):
            v = _at(x, i, c, r, axis)
            w = _at(g, i, c, r, axis)
            d = w * factor if clamped else (w - v * factor * dot * factor) * factor
            if axis == 1:
                dX[i, c, r] = d
            else:
                dX[i, r, c] = d


def l2_normalize_backward(x, inv_norm, axis, epsilon, g, dX):
    """``dX`` from ``g = dL/d(x / ||x||)`` along ``axis`` (see the CPU twin)."""
    if inv_norm.size:
        _l2_normalize_backward[grid(inv_norm.size), block()](x, inv_norm, axis, epsilon, g, dX)
