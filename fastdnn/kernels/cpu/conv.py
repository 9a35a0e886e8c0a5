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

``conv_forward`` and ``conv_backward`` are plain functions around the compiled pieces, so that the
products run in NumPy's BLAS (see ``dense``). The patch matrix is a buffer the layer reuses (and keeps from forward to backward: it is the ``x``
of ``dL/dK``), so BLAS does the arithmetic and nothing is allocated per batch.
"""

import numpy as np

from fastdnn.kernels.cpu.activation import BACKWARD, FORWARD, LINEAR
from fastdnn.kernels.cpu.dense import column_sums
from fastdnn.kernels.jit import jit


@jit
def im2col(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, cols):
    """``cols[(b oh + oy) ow + ox, (i kw + j) C + c] = x[b, oy sh - pad_top + i dh, ox sw - pad_left + j dw, c]``.

    ``x`` is ``(n, H, W, C)``, ``cols`` is ``(n oh ow, kh kw C)``; taps outside the input read 0.
    A patch inside the input (no dilation) is ``kh`` spans of ``kw C`` consecutive values of ``x``
    (channels last), copied with unsigned offsets: numba then emits no negative-index wraparound
    test per element, which would cost more than the copy.
    """
    n, H, W, C = x.shape
    span = kw * C
    K = kh * span
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    for b in range(n):
        for oy in range(oh):
            h0 = oy * sh - pad_top
            rows_inside = dh == 1 and h0 >= 0 and h0 + kh <= H
            for ox in range(ow):
                w0 = ox * sw - pad_left
                out = ((b * oh + oy) * ow + ox) * K
                if rows_inside and dw == 1 and w0 >= 0 and w0 + kw <= W:
                    _copy_patch(xf, ((b * H + h0) * W + w0) * C, W * C, cf, out, kh, span)
                    continue
                for i in range(kh):
                    hi = h0 + i * dh
                    for j in range(kw):
                        wi = w0 + j * dw
                        at = out + (i * kw + j) * C
                        if 0 <= hi < H and 0 <= wi < W:
                            src = ((b * H + hi) * W + wi) * C
                            for c in range(C):
                                cf[at + c] = xf[src + c]
                        else:
                            for c in range(C):
                                cf[at + c] = 0


@jit(inline="always")
def _copy_patch(xf, src, stride, cf, out, rows, span):
    """``rows`` spans of ``span`` values, ``stride`` apart in ``xf`` from ``src``, to ``cf[out:]`` back to back."""
    s = np.uint64(src)
    o = np.uint64(out)
    step = np.uint64(stride)
    width = np.uint64(span)
    for _ in range(rows):
        for k in range(width):
            cf[o + k] = xf[s + k]
        o += width
        s += step


@jit(inline="always")
def _add_patch(cf, out, df, dst, stride, rows, span):
    """The adjoint of `_copy_patch`: ``rows`` spans of ``cf[out:]`` added into ``df``, ``stride`` apart from ``dst``."""
    o = np.uint64(out)
    d = np.uint64(dst)
    step = np.uint64(stride)
    width = np.uint64(span)
    for _ in range(rows):
        for k in range(width):
            df[d + k] += cf[o + k]
        o += width
        d += step


@jit
def col2im(dcols, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX):
    """The adjoint of `im2col`: ``dX = 0``, then every patch entry is added back where it was read."""
    n, H, W, C = dX.shape
    span = kw * C
    K = kh * span
    df = dX.reshape(-1)
    cf = dcols.reshape(-1)
    df[:] = 0
    for b in range(n):
        for oy in range(oh):
            h0 = oy * sh - pad_top
            rows_inside = dh == 1 and h0 >= 0 and h0 + kh <= H
            for ox in range(ow):
                w0 = ox * sw - pad_left
                src = ((b * oh + oy) * ow + ox) * K
                if rows_inside and dw == 1 and w0 >= 0 and w0 + kw <= W:
                    _add_patch(cf, src, df, ((b * H + h0) * W + w0) * C, W * C, kh, span)
                    continue
                for i in range(kh):
                    hi = h0 + i * dh
                    if hi < 0 or hi >= H:
                        continue
                    for j in range(kw):
                        wi = w0 + j * dw
                        if 0 <= wi < W:
                            dst = ((b * H + hi) * W + wi) * C
                            at = src + (i * kw + j) * C
                            for c in range(C):
                                df[dst + c] += cf[at + c]


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
    np.matmul(cols, K, out=z)
    FORWARD[code](z, b, alpha, y)


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
        BACKWARD[code](z, y, dLdY, alpha, dLdZ)
        g = dLdZ
    np.matmul(cols.T, g, out=dK)
    if db.shape[0] > 0:
        column_sums(g, db)
    if compute_dx:
        np.matmul(g, K.T, out=dcols)
        col2im(dcols, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX)
