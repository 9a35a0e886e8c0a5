"""Merge kernels: elementwise combinations of several inputs, concatenation, and L2 normalization.

Arrays are flat (``n * features``) for the elementwise kernels and ``(outer, length, inner)`` for
concatenation, so that one loop serves every axis. Inputs are combined pairwise into the output
(which may be the first input's buffer), so any number of inputs needs no stacked copy::

    sum:      out = a + b               d/da = g,  d/db = g
    product:  out = a * b               d/da = g b  (with k inputs: g times the k - 1 others)
    maximum:  out = max(a, b), winner   d/dx_i = g where x_i won (the first on ties), else 0
"""

import numpy as np

from fastdnn.kernels.jit import jit

ADD = 0
SUBTRACT = 1
MULTIPLY = 2
MAXIMUM = 3
MINIMUM = 4


@jit
def combine(a, b, op, out):
    """``out = a (op) b`` elementwise for op ADD, SUBTRACT or MULTIPLY (1-D arrays, ``out`` may be ``a``)."""
    if op == ADD:
        for i in range(a.shape[0]):
            out[i] = a[i] + b[i]
    elif op == SUBTRACT:
        for i in range(a.shape[0]):
            out[i] = a[i] - b[i]
    else:
        for i in range(a.shape[0]):
            out[i] = a[i] * b[i]


@jit
def copy(a, out):
    """``out = a`` (1-D arrays)."""
    for i in range(a.shape[0]):
        out[i] = a[i]


@jit
def scale(a, factor, out):
    """``out = factor * a`` (``factor`` in the array dtype)."""
    for i in range(a.shape[0]):
        out[i] = a[i] * factor


@jit
def extreme(out, winner, x, index, maximum):
    """Fold input ``index`` into the running maximum (minimum) ``out`` (input 0 starts it); ``winner``
    keeps which input holds each element (strictly better only: the first input wins ties, as its
    gradient does)."""
    if index == 0:
        for i in range(x.shape[0]):
            out[i] = x[i]
            winner[i] = 0
    elif maximum:
        for i in range(x.shape[0]):
            if x[i] > out[i]:
                out[i] = x[i]
                winner[i] = index
    else:
        for i in range(x.shape[0]):
            if x[i] < out[i]:
                out[i] = x[i]
                winner[i] = index


@jit
def routed(g, winner, index, dX):
    """``dX = g`` where input ``index`` won the maximum/minimum, else 0."""
    zero = g.dtype.type(0.0)
    for i in range(g.shape[0]):
        dX[i] = g[i] if winner[i] == index else zero


@jit
def place(x, offset, out):
    """``out[:, offset:offset + len, :] = x`` for ``x`` of shape ``(outer, len, inner)``."""
    for o in range(x.shape[0]):
        for a in range(x.shape[1]):
            for i in range(x.shape[2]):
                out[o, offset + a, i] = x[o, a, i]


@jit
def take(g, offset, dX):
    """``dX = g[:, offset:offset + len, :]``: an input's part of the concatenation's gradient."""
    for o in range(dX.shape[0]):
        for a in range(dX.shape[1]):
            for i in range(dX.shape[2]):
                dX[o, a, i] = g[o, offset + a, i]


def batched_matmul(a, b, out, trans_a, trans_b):
    """``out[i] = op(a[i]) op(b[i])`` per sample of 3-D arrays, ``op`` transposing where asked (NumPy's BLAS)."""
    np.matmul(a.transpose(0, 2, 1) if trans_a else a, b.transpose(0, 2, 1) if trans_b else b, out=out)


@jit
def l2_normalize(x, axis, epsilon, out, inv_norm):
    """``x`` (3-D) divided by ``sqrt(max(sum x^2, epsilon))`` along ``axis`` (1 or 2); ``inv_norm``
    (``(n, the other axis)``) keeps the factors."""
    n, a, b = x.shape
    length = a if axis == 1 else b
    for i in range(n):
        for r in range(inv_norm.shape[1]):
            total = x.dtype.type(0.0)
            for c in range(length):
                v = x[i, c, r] if axis == 1 else x[i, r, c]
                total += v * v
            factor = x.dtype.type(1.0) / np.sqrt(max(total, epsilon))
            inv_norm[i, r] = factor
            for c in range(length):
                if axis == 1:
                    out[i, c, r] = x[i, c, r] * factor
                else:
                    out[i, r, c] = x[i, r, c] * factor


@jit
def l2_normalize_backward(x, inv_norm, axis, epsilon, g, dX):
    """``dX`` from ``g = dL/d(x / ||x||)`` along ``axis``: ``(g - u (u . g)) / ||x||`` with
    ``u = x / ||x||`` (and ``g / ||x||`` where the norm was clamped at ``sqrt(epsilon)``, a constant there)."""
    n, a, b = x.shape
    length = a if axis == 1 else b
    for i in range(n):
        for r in range(inv_norm.shape[1]):
            factor = inv_norm[i, r]
            total = x.dtype.type(0.0)
            dot = x.dtype.type(0.0)
            for c in range(length):
                v = x[i, c, r] if axis == 1 else x[i, r, c]
                w = g[i, c, r] if axis == 1 else g[i, r, c]
                total += v * v
                dot += v * w
            clamped = total <= epsilon
            for c in range(length):
                v = x[i, c, r] if axis == 1 else x[i, r, c]
                w = g[i, c, r] if axis == 1 else g[i, r, c]
                d = w * factor if clamped else (w - v * factor * dot * factor) * factor
                if axis == 1:
                    dX[i, c, r] = d
                else:
                    dX[i, r, c] = d
