"""Convolution kernels (channels last) as matrix products: im2col, one BLAS gemm, col2im; and, for one
input channel and strides of 1, a direct convolution over padded planes (at the end of this module).

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

from fastdnn.kernels.cpu.activation import BACKWARD, FORWARD, LINEAR, RELU
from fastdnn.kernels.cpu.dense import column_sums
from fastdnn.kernels.jit import jit
from fastdnn.threads import matmul, part_count, split_batch


# Constants of the smallest float type, so that an expression keeps its array's dtype (a zero taken
# from the data, such as ``a[0] * 0``, is NaN when that element is NaN or inf).
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


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

    Samples are independent: they run as parts of the batch under a pool plan (`split_batch`).
    """
    positions = oh * ow

    def samples(lo, hi, _part):
        rows = slice(lo * positions, hi * positions)
        im2col(x[lo:hi], kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, cols[rows])
        np.matmul(cols[rows], K, out=z[rows])
        FORWARD[code](z[rows], b, alpha, y[rows])

    split_batch(x.shape[0], samples)


def conv_backward(
    cols, K, z, y, dLdY, code, alpha, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dLdZ, dK, db, dcols, dX, compute_dx
):
    """Gradients of a convolution, written into ``dLdZ``, ``dK``, ``db`` (if non-empty), ``dcols``, ``dX``.

    With ``code == LINEAR``, ``dLdY`` is ``dL/dz`` (also how a fused loss hands it in) and ``dLdZ`` is
    not touched. ``dcols`` and ``dX`` (``(n, H, W, C)``) are only written when ``compute_dx``.
    """
    positions = oh * ow
    g = dLdY if code == LINEAR else dLdZ

    def samples(lo, hi, _part):  # dL/dz and dL/dx sample by sample
        rows = slice(lo * positions, hi * positions)
        if code != LINEAR:
            BACKWARD[code](z[rows], y[rows], dLdY[rows], alpha, dLdZ[rows])
        if compute_dx:
            np.matmul(g[rows], K.T, out=dcols[rows])
            col2im(dcols[rows], kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX[lo:hi])

    split_batch(z.shape[0] // positions, samples)
    matmul(cols.T, g, dK)  # summed over every sample
    if db.shape[0] > 0:
        column_sums(g, db)


# -- one input channel, stride 1: direct convolution over padded planes -----------------------------
#
# With C == 1 the patch matrix has kh kw columns and the product F (few): BLAS runs such thin
# products far below its peak, and im2col writes kh kw copies of the input. Instead each sample is
# stored once, zero-padded, as a flat plane ``xp`` of ``Hp`` rows of ``Wp`` values. Output position
# ``(oy, ox)`` sits at ``q = oy Wp + ox`` and tap ``(i, j)`` reads ``xp[q + i dh Wp + j dw]``: one
# shift of the whole plane, so that a tap of a filter is ONE long multiply-add with a scalar weight,
#
#     zp[f, q] += K[i kw + j, f] * xp[b, q + i dh Wp + j dw]      for q < L = (oh - 1) Wp + ow,
#
# (positions with ``ox >= ow`` are computed and thrown away: (kw - 1) dw per row), and dL/dK a dot
# product of the same shifted plane with ``dL/dz`` laid out alike (zeros at the thrown-away positions).
# The planes are kept from forward to backward in place of the patch matrix (1/(kh kw) of its size).
#
# These kernels are a CPU layout of the same convolution: the device runs its conv_forward /
# conv_backward twins (im2col + GEMM) for every geometry, so they have no CUDA twins of their own.
CPU_ONLY = frozenset({"pad_planes", "conv_planes", "kernel_grad_planes", "conv_forward_planes", "conv_backward_planes"})


@jit
def pad_planes(x, pad_top, pad_left, Wp, xp):
    """``xp[b, (h + pad_top) Wp + w + pad_left] = x[b, h, w, 0]``, 0 elsewhere (``xp`` is ``(n, Hp Wp)``)."""
    n, H, W, _ = x.shape
    xp[:] = 0
    Hp = xp.shape[1] // Wp
    for b in range(n):
        for h in range(min(H, Hp - pad_top)):
            at = (h + pad_top) * Wp + pad_left
            for w in range(min(W, Wp - pad_left)):
                xp[b, at + w] = x[b, h, w, 0]


@jit
def conv_planes(xp, K, b, relu, kh, kw, dh, dw, oh, ow, Wp, zp, z, y):
    """``z[(s oh + oy) ow + ox, f] = b[f] + sum_t K[t, f] xp[s, oy Wp + ox + i dh Wp + j dw]`` (``t = i kw + j``),
    and ``y = relu(z)`` if ``relu`` (else ``y`` is not touched).

    ``zp`` (``(F, L)``) is scratch: one sample's output planes before they are interleaved into ``z``,
    a strided walk in which the relu costs little and saves a pass over ``z``.
    """
    n = xp.shape[0]
    T, F = K.shape
    L = np.uint64((oh - 1) * Wp + ow)
    for s in range(n):
        plane = xp[s]
        # two filters per pass (each plane value loaded once for both), four taps per pass (one load
        # and store of the outputs per four products); an odd last filter alone
        f = 0
        while f + 2 <= F:
            _filter_pair(plane, K, b, f, kw, dh, dw, Wp, L, zp[f], zp[f + 1])
            f += 2
        if f < F:
            _filter_one(plane, K, b, f, kw, dh, dw, Wp, L, zp[f])
        if relu:
            _interleave(zp, s, oh, ow, Wp, RELU, z, y)
        else:
            _interleave(zp, s, oh, ow, Wp, LINEAR, z, z)


@jit(inline="always")
def _filter_pair(plane, K, b, f, kw, dh, dw, Wp, L, out, out2):
    """Filters ``f`` and ``f + 1`` of `conv_planes` for one sample, into ``out`` and ``out2``."""
    T = K.shape[0]
    start = b[f] if b.shape[0] > 0 else _ZERO
    start2 = b[f + 1] if b.shape[0] > 0 else _ZERO
    for q in range(L):
        out[q] = start
        out2[q] = start2
    t = 0
    while t + 4 <= T:
        o0, o1, o2, o3 = _shift(t, kw, dh, dw, Wp), _shift(t + 1, kw, dh, dw, Wp), _shift(t + 2, kw, dh, dw, Wp), _shift(t + 3, kw, dh, dw, Wp)
        k0, k1, k2, k3 = K[t, f], K[t + 1, f], K[t + 2, f], K[t + 3, f]
        m0, m1, m2, m3 = K[t, f + 1], K[t + 1, f + 1], K[t + 2, f + 1], K[t + 3, f + 1]
        for q in range(L):
            p0, p1, p2, p3 = plane[o0 + q], plane[o1 + q], plane[o2 + q], plane[o3 + q]
            out[q] += k0 * p0 + k1 * p1 + k2 * p2 + k3 * p3
            out2[q] += m0 * p0 + m1 * p1 + m2 * p2 + m3 * p3
        t += 4
    while t < T:
        o0 = _shift(t, kw, dh, dw, Wp)
        k0, m0 = K[t, f], K[t, f + 1]
        for q in range(L):
            p0 = plane[o0 + q]
            out[q] += k0 * p0
            out2[q] += m0 * p0
        t += 1


@jit(inline="always")
def _filter_one(plane, K, b, f, kw, dh, dw, Wp, L, out):
    """Filter ``f`` of `conv_planes` for one sample, into ``out``."""
    T = K.shape[0]
    start = b[f] if b.shape[0] > 0 else _ZERO
    for q in range(L):
        out[q] = start
    t = 0
    while t + 4 <= T:
        o0, o1, o2, o3 = _shift(t, kw, dh, dw, Wp), _shift(t + 1, kw, dh, dw, Wp), _shift(t + 2, kw, dh, dw, Wp), _shift(t + 3, kw, dh, dw, Wp)
        k0, k1, k2, k3 = K[t, f], K[t + 1, f], K[t + 2, f], K[t + 3, f]
        for q in range(L):
            out[q] += k0 * plane[o0 + q] + k1 * plane[o1 + q] + k2 * plane[o2 + q] + k3 * plane[o3 + q]
        t += 4
    while t < T:
        o0 = _shift(t, kw, dh, dw, Wp)
        k0 = K[t, f]
        for q in range(L):
            out[q] += k0 * plane[o0 + q]
        t += 1


@jit(inline="always")
def _interleave(zp, s, oh, ow, Wp, code, z, y):
    """``z[(s oh + oy) ow + ox, f] = zp[f, oy Wp + ox]``, ``y = f(z)``; inlined with ``code`` a
    constant, so that the activation is not a call per element."""
    F = zp.shape[0]
    for oy in range(oh):
        for ox in range(ow):
            row = (s * oh + oy) * ow + ox
            for f in range(F):
                v = zp[f, oy * Wp + ox]
                z[row, f] = v
                if code == RELU:
                    y[row, f] = _ZERO if v <= _ZERO else v  # as activation.forward_scalar: a NaN propagates


@jit
def kernel_grad_planes(xp, dLdY, y, relu, kh, kw, dh, dw, oh, ow, Wp, gp, dLdZ, db, dK):
    """``dK[t, f] = sum_{s, q} xp[s, q + i dh Wp + j dw] gp[f, q]`` with ``gp`` sample ``s``'s ``dL/dz`` as
    planes: ``dL/dy relu'(z)`` (from ``y``) if ``relu``, else ``dLdY`` is ``dL/dz``.

    On the same walk ``db = sum_rows dL/dz`` (if non-empty) and, if ``relu`` and ``dLdZ`` is
    non-empty, ``dLdZ = dL/dz`` (the input gradient's product reads it). ``gp`` (``(F, L)``) is
    scratch; its thrown-away positions stay 0.
    """
    n = xp.shape[0]
    T, F = dK.shape
    L = np.uint64((oh - 1) * Wp + ow)
    gp[:] = 0
    dK[:] = 0
    db[:] = 0
    for s in range(n):
        if relu:
            _gradient_planes(dLdY, y, s, oh, ow, Wp, RELU, gp, dLdZ, db)
        else:
            _gradient_planes(dLdY, y, s, oh, ow, Wp, LINEAR, gp, dLdZ, db)
        plane = xp[s]
        for t in range(T):
            o = _shift(t, kw, dh, dw, Wp)
            # four filters per pass: one load of the plane per four products
            f = 0
            while f + 4 <= F:
                g0, g1, g2, g3 = gp[f], gp[f + 1], gp[f + 2], gp[f + 3]
                a0 = a1 = a2 = a3 = _ZERO
                for q in range(L):
                    v = plane[o + q]
                    a0 += v * g0[q]
                    a1 += v * g1[q]
                    a2 += v * g2[q]
                    a3 += v * g3[q]
                dK[t, f] += a0
                dK[t, f + 1] += a1
                dK[t, f + 2] += a2
                dK[t, f + 3] += a3
                f += 4
            while f < F:
                g0 = gp[f]
                a0 = _ZERO
                for q in range(L):
                    a0 += plane[o + q] * g0[q]
                dK[t, f] += a0
                f += 1


@jit(inline="always")
def _gradient_planes(dLdY, y, s, oh, ow, Wp, code, gp, dLdZ, db):
    """Sample ``s``'s ``dL/dz`` into ``gp`` (and ``dLdZ``, ``db``: see `kernel_grad_planes`); inlined with
    ``code`` a constant."""
    F = gp.shape[0]
    bias = db.shape[0] > 0
    keep = code == RELU and dLdZ.shape[0] > 0
    for oy in range(oh):
        for ox in range(ow):
            row = (s * oh + oy) * ow + ox
            for f in range(F):
                g = dLdY[row, f]
                if code == RELU:
                    # relu'(z) from y, a factor as in activation.derivative_scalar (so a NaN dL/dy stays NaN)
                    g *= _ONE if y[row, f] > _ZERO else _ZERO
                gp[f, oy * Wp + ox] = g
                if keep:
                    dLdZ[row, f] = g
                if bias:
                    db[f] += g


@jit(inline="always")
def _shift(t, kw, dh, dw, Wp):
    """Where tap ``t = i kw + j`` reads the plane, relative to the output position (unsigned: no
    wraparound test per element, so that the loops vectorize)."""
    return np.uint64((t // kw) * dh * Wp + (t % kw) * dw)


def conv_forward_planes(x, K, b, code, alpha, kh, kw, dh, dw, pad_top, pad_left, oh, ow, xp, zp, z, y):
    """`conv_forward` for ``C == 1`` and strides of 1, by padded planes ``xp`` (``(n, Hp Wp)``, kept
    for `conv_backward_planes`); ``zp`` (``(parts, F, (oh - 1) Wp + ow)``, ``parts`` =
    `part_count` ``(n)``) is scratch, one per part of the batch. A relu is applied on the way, any
    other activation in a pass of its own."""
    Wp = ow + (kw - 1) * dw
    positions = oh * ow

    def samples(lo, hi, part):
        rows = slice(lo * positions, hi * positions)
        pad_planes(x[lo:hi], pad_top, pad_left, Wp, xp[lo:hi])
        conv_planes(xp[lo:hi], K, b, code == RELU, kh, kw, dh, dw, oh, ow, Wp, zp[part], z[rows], y[rows])
        if code != RELU:
            FORWARD[code](z[rows], b[:0], alpha, y[rows])  # the bias is in z already

    split_batch(x.shape[0], samples)


def conv_backward_planes(
    xp, K, z, y, dLdY, code, alpha, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, gp, sums, dLdZ, dK, db, dcols, dX, compute_dx
):
    """`conv_backward` for the layout of `conv_forward_planes`: ``dK`` and ``db`` from the planes
    (``gp`` is scratch shaped as ``zp``), ``dX`` as there (``dL/dz K^T``, then `col2im`).

    With ``code == LINEAR``, ``dLdY`` is ``dL/dz`` and ``dLdZ`` is not touched (as in `conv_backward`).
    A relu's derivative is applied on the way, any other activation's in a pass of its own.
    With the batch in more than one part, each part sums its own ``dK`` and ``db`` into ``sums``
    (``(parts, kh kw + 1, F)``: ``dK`` then ``db``), added up at the end.
    """
    Wp = ow + (kw - 1) * dw
    relu = code == RELU
    positions = oh * ow
    n = xp.shape[0]
    g = dLdY if relu or code == LINEAR else dLdZ
    whole = part_count(n) == 1
    taps = dK.shape[0]

    def samples(lo, hi, part):
        rows = slice(lo * positions, hi * positions)
        if not relu and code != LINEAR:
            BACKWARD[code](z[rows], y[rows], dLdY[rows], alpha, dLdZ[rows])
        own_dK = dK if whole else sums[part, :taps]
        own_db = db if whole else sums[part, taps, : db.shape[0]]
        kept = dLdZ[rows] if (relu and compute_dx) else dLdZ[:0]
        kernel_grad_planes(xp[lo:hi], g[rows], y[rows], relu, kh, kw, dh, dw, oh, ow, Wp, gp[part], kept, own_db, own_dK)
        if compute_dx:
            np.matmul(dLdZ[rows] if relu else g[rows], K.T, out=dcols[rows])
            col2im(dcols[rows], kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX[lo:hi])

    split_batch(n, samples)
    if not whole:
        np.sum(sums[:, :taps], axis=0, out=dK)
        if db.shape[0] > 0:
            np.sum(sums[:, taps, : db.shape[0]], axis=0, out=db)
