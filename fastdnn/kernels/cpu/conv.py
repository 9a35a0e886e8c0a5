"""Convolution kernels (channels last) as matrix products: im2col, one BLAS gemm, col2im.

Geometry, per spatial axis: output position ``o`` and kernel tap ``i`` read input position
``o s - p + i d`` (stride ``s``, leading padding ``p``, dilation ``d``); positions outside the input
read 0. A 1-D convolution is the 2-D one with a height of 1.

Forward, with ``cols`` the patch matrix (one row per output position; ``(i, j, c)`` along a row, the
order of a ``(kh, kw, C, F)`` kernel reshaped to ``(kh kw C, F)``)::

    cols = im2col(x);  z = cols K + b;  y = f(z)

Backward::

    dL/dz = dL/dy * f'(z);  dL/dK = cols^T dL/dz;  dL/db = sum_rows dL/dz;  dL/dx = col2im(dL/dz K^T)

``col2im`` scatter-adds each patch row back where im2col read it: an input element read by several
patches (overlapping windows) collects the gradient of each.

The patch matrix is a buffer the layer reuses (and keeps from forward to backward: it is the ``x``
of ``dL/dK``), so BLAS does the arithmetic and nothing is allocated per batch.
"""

import numpy as np

from fastdnn.kernels.cpu.activation import LINEAR, activation_backward
from fastdnn.kernels.cpu.dense import bias_activation, column_sums
from fastdnn.kernels.jit import jit


@jit
def im2col(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, cols):
    """``cols[(b oh + oy) ow + ox, (i kw + j) C + c] = x[b, oy sh - pad_top + i dh, ox sw - pad_left + j dw, c]``.

    ``x`` is ``(n, H, W, C)``, ``cols`` is ``(n oh ow, kh kw C)``; taps outside the input read 0.
    """
    n, H, W, C = x.shape
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                row = (b * oh + oy) * ow + ox
                for i in range(kh):
                    hi = oy * sh - pad_top + i * dh
                    inside_h = 0 <= hi < H
                    for j in range(kw):
                        wi = ox * sw - pad_left + j * dw
                        start = (i * kw + j) * C
                        if inside_h and 0 <= wi < W:
                            for c in range(C):
                                cols[row, start + c] = x[b, hi, wi, c]
                        else:
                            for c in range(C):
                                cols[row, start + c] = 0


@jit
def col2im(dcols, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX):
    """The adjoint of `im2col`: ``dX = 0``, then every patch entry is added back where it was read."""
    n, H, W, C = dX.shape
    dX[...] = 0
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                row = (b * oh + oy) * ow + ox
                for i in range(kh):
                    hi = oy * sh - pad_top + i * dh
                    if hi < 0 or hi >= H:
                        continue
                    for j in range(kw):
                        wi = ox * sw - pad_left + j * dw
                        if wi < 0 or wi >= W:
                            continue
                        start = (i * kw + j) * C
                        for c in range(C):
                            dX[b, hi, wi, c] += dcols[row, start + c]


@jit
def conv_forward(x, K, b, code, alpha, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, cols, z, y):
    """``z = im2col(x) K + b``, ``y = f(z)``; pass ``z`` and ``y`` as one array when ``z`` need not be kept.

    Parameters
    ----------
    x : (n, H, W, C);  K : (kh kw C, F);  b : (F,) or empty for no bias
    code, alpha : activation code and slope (see ``activation``)
    kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow : kernel size, strides, dilations, leading
        padding and output size
    cols : (n oh ow, kh kw C) patch buffer, kept for the backward pass
    z, y : (n oh ow, F) outputs (an ``(n, oh, ow, F)`` array, row-major)
    """
    im2col(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, cols)
    np.dot(cols, K, z)
    bias_activation(z, b, code, alpha, y)


@jit
def conv_backward(
    cols, K, z, y, dLdY, code, alpha, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dLdZ, dK, db, dcols, dX, compute_dx
):
    """Gradients of a convolution, written into ``dLdZ``, ``dK``, ``db`` (if non-empty), ``dcols``, ``dX``.

    With ``code == LINEAR``, ``dLdY`` is ``dL/dz`` (also how a fused loss hands it in) and ``dLdZ`` is
    not touched. ``dcols`` and ``dX`` (``(n, H, W, C)``) are only written when ``compute_dx``.
    """
    if code == LINEAR:
        g = dLdY
    else:
        activation_backward(code, z, y, dLdY, alpha, dLdZ)
        g = dLdZ
    np.dot(cols.T, g, dK)
    if db.shape[0] > 0:
        column_sums(g, db)
    if compute_dx:
        np.dot(g, K.T, dcols)
        col2im(dcols, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX)
