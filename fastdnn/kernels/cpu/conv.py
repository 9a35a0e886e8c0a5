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

from fastdnn.kernels.cpu.activation import LINEAR, activation_backward
from fastdnn.kernels.cpu.dense import bias_activation, column_sums
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
            if C == 1:
                # Patch rows of single values: copying them span by span costs a loop set-up per
                # handful of values, so fill the block of this output row tap by tap instead.
                block = (b * oh + oy) * ow * K
                for i in range(kh):
                    hi = h0 + i * dh
                    for j in range(kw):
                        _fill_tap(xf, (b * H + hi) * W, 0 <= hi < H, j * dw - pad_left, sw, W, cf, block + i * kw + j, K, ow)
                continue
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
def _fill_tap(xf, row, row_inside, offset, stride, W, cf, at, K, count):
    """``cf[at + ox K] = xf[row + ox stride + offset]`` for ``ox < count``, 0 where that column is outside ``[0, W)``
    or the whole row is outside the input (``row_inside`` false)."""
    lo, hi = 0, 0
    if row_inside:
        # ox stride + offset in [0, W): ox from ceil(-offset / stride) to floor((W - 1 - offset) / stride)
        lo = min(max(-(offset // stride), 0), count)
        hi = min(max((W - 1 - offset) // stride + 1, lo), count)
    step = np.uint64(K)
    o = np.uint64(at)
    for _ in range(lo):
        cf[o] = 0
        o += step
    s = np.uint64(row + lo * stride + offset)
    src_step = np.uint64(stride)
    for _ in range(lo, hi):
        cf[o] = xf[s]
        o += step
        s += src_step
    for _ in range(hi, count):
        cf[o] = 0
        o += step


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
    bias_activation(z, b, code, alpha, y)


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
    np.matmul(cols.T, g, out=dK)
    if db.shape[0] > 0:
        column_sums(g, db)
    if compute_dx:
        np.matmul(g, K.T, out=dcols)
        col2im(dcols, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX)


# -- one input channel, horizontal stride 1: direct convolution over rows --------------------------
#
# With C == 1 the patch matrix has kh kw columns and the product has F (few) columns: BLAS runs such
# thin products far below its peak, and im2col writes kh kw copies of the input. Instead each padded
# input row is stored once with every value repeated F times ("expanded": ``xe[b, r, w F + f]``), so
# that tap (i, j) of an output row is ONE contiguous multiply-add of length ``ow F``:
#
#     z[b, oy, :, :] += xe[b, oy sh + i dh, j dw F : j dw F + ow F] * wt[i kw + j]
#
# with ``wt[t, ox F + f] = K[t, f]`` (the kernel tiled along the row). dL/dK is the same walk with the
# product accumulated into ``acc[t, ox F + f]``, summed over ``ox`` at the end. The expanded rows are
# kept from forward to backward in place of the patch matrix (F / (kh kw) of its size per position).


@jit
def expand_rows(x, F, pad_top, pad_left, xe):
    """``xe[b, r, w F + f] = x[b, r - pad_top, w - pad_left, 0]`` for every ``f < F``; 0 outside the input.

    ``x`` is ``(n, H, W, 1)``; ``xe`` is ``(n, Hp, Wp F)``, the padded height and width the output reads.
    """
    n, H, W, _ = x.shape
    _, Hp, width = xe.shape
    Wp = width // F
    for b in range(n):
        for r in range(Hp):
            row = xe[b, r]
            row[:] = 0
            hi = r - pad_top
            if hi < 0 or hi >= H:
                continue
            for wi in range(max(0, -pad_left), min(W, Wp - pad_left)):
                v = x[b, hi, wi, 0]
                at = (wi + pad_left) * F
                for f in range(F):
                    row[at + f] = v


@jit
def tile_row(K, ow, wt):
    """``wt[t, ox F + f] = K[t, f]`` for ``ox < ow`` (``K`` is ``(T, F)``, ``wt`` is ``(T, ow F)``)."""
    T, F = K.shape
    for t in range(T):
        for ox in range(ow):
            for f in range(F):
                wt[t, ox * F + f] = K[t, f]


@jit(inline="always")
def _tap(xe, b, oy, t, kw, sh, dh, dw, F):
    """The expanded row tap ``t = i kw + j`` of output row ``oy`` reads, and its offset into it."""
    i, j = t // kw, t % kw
    return xe[b, oy * sh + i * dh], np.uint64(j * dw * F)


@jit
def conv_rows(xe, wt, bt, kh, kw, sh, dh, dw, oh, ow, z):
    """``z[b, oy] = bt + sum_{i, j} xe[b, oy sh + i dh, j dw F:][:ow F] * wt[i kw + j]`` (``z`` is ``(n oh ow, F)``)."""
    n = xe.shape[0]
    F = z.shape[1]
    width = ow * F
    cells = np.uint64(width)  # unsigned: no wraparound test per element, so the inner loop vectorizes
    taps = kh * kw
    zf = z.reshape(-1)
    for b in range(n):
        for oy in range(oh):
            out = zf[(b * oh + oy) * width : (b * oh + oy + 1) * width]
            out[:] = bt
            # four taps per pass over the row: one load and store of ``out`` per four products
            t = 0
            while t + 4 <= taps:
                s0, o0 = _tap(xe, b, oy, t, kw, sh, dh, dw, F)
                s1, o1 = _tap(xe, b, oy, t + 1, kw, sh, dh, dw, F)
                s2, o2 = _tap(xe, b, oy, t + 2, kw, sh, dh, dw, F)
                s3, o3 = _tap(xe, b, oy, t + 3, kw, sh, dh, dw, F)
                w0, w1, w2, w3 = wt[t], wt[t + 1], wt[t + 2], wt[t + 3]
                for q in range(cells):
                    out[q] += s0[o0 + q] * w0[q] + s1[o1 + q] * w1[q] + s2[o2 + q] * w2[q] + s3[o3 + q] * w3[q]
                t += 4
            while t < taps:
                s0, o0 = _tap(xe, b, oy, t, kw, sh, dh, dw, F)
                w0 = wt[t]
                for q in range(cells):
                    out[q] += s0[o0 + q] * w0[q]
                t += 1


@jit
def kernel_grad_rows(xe, g, kh, kw, sh, dh, dw, oh, ow, acc, dK):
    """``dK[i kw + j, f] = sum_{b, oy, ox} xe[b, oy sh + i dh, (ox + j dw) F + f] g[(b oh + oy) ow + ox, f]``.

    ``acc`` (``(kh kw, ow F)``) holds the sums per output column until the last row.
    """
    n = xe.shape[0]
    F = g.shape[1]
    width = ow * F
    cells = np.uint64(width)
    gf = g.reshape(-1)
    acc[:] = 0
    for b in range(n):
        for oy in range(oh):
            grow = gf[(b * oh + oy) * width : (b * oh + oy + 1) * width]
            for i in range(kh):
                src = xe[b, oy * sh + i * dh]
                for j in range(kw):
                    a = acc[i * kw + j]
                    off = np.uint64(j * dw * F)
                    for q in range(cells):
                        a[q] += src[off + q] * grow[q]
    dK[:] = 0
    for t in range(kh * kw):
        for ox in range(ow):
            for f in range(F):
                dK[t, f] += acc[t, ox * F + f]


def conv_forward_rows(x, K, b, code, alpha, kh, kw, sh, dh, dw, pad_top, pad_left, oh, ow, xe, wt, bt, z, y):
    """`conv_forward` for ``C == 1`` and a horizontal stride of 1, by expanded rows; ``xe`` is kept for
    `conv_backward_rows`. ``wt`` (``(kh kw, ow F)``) and ``bt`` (``(ow F,)``) are scratch."""
    F = K.shape[1]
    expand_rows(x, F, pad_top, pad_left, xe)
    tile_row(K, ow, wt)
    if b.shape[0] > 0:
        tile_row(b.reshape(1, F), ow, bt.reshape(1, -1))
    else:
        bt[:] = 0
    conv_rows(xe, wt, bt, kh, kw, sh, dh, dw, oh, ow, z)
    bias_activation(z, b[:0], code, alpha, y)


def conv_backward_rows(
    xe, K, z, y, dLdY, code, alpha, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, acc, dLdZ, dK, db, dcols, dX, compute_dx
):
    """`conv_backward` for the layout of `conv_forward_rows`: ``dK`` from the expanded rows (``acc`` is
    scratch), ``dX`` as there (``dL/dz K^T``, then `col2im`)."""
    if code == LINEAR:
        g = dLdY
    else:
        activation_backward(code, z, y, dLdY, alpha, dLdZ)
        g = dLdZ
    kernel_grad_rows(xe, g, kh, kw, sh, dh, dw, oh, ow, acc, dK)
    if db.shape[0] > 0:
        column_sums(g, db)
    if compute_dx:
        np.matmul(g, K.T, out=dcols)
        col2im(dcols, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX)
