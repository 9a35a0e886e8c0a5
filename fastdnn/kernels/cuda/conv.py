"""CUDA twins of ``kernels.cpu.conv``: convolutions (channels last) as im2col, one GEMM and col2im.

Same geometry and formulas as the CPU module: output position ``o`` and kernel tap ``i`` read input
position ``o s - p + i d`` along each spatial axis, zeros outside the input, and::

    forward:   cols = im2col(x);  z = cols K + b;  y = f(z)
    backward:  dL/dz = dL/dy * f'(z);  dL/dK = cols^T dL/dz;  dL/db = sum_rows dL/dz;
               dL/dx = col2im(dL/dz K^T)

im2col runs one thread per patch-matrix element. col2im is a gather, not a scatter: one thread per
input element sums the patch entries that read it, visiting the patches in the order the CPU adds
them, so the result is deterministic (no atomics) and bitwise that of the CPU. The products go
through `dense.gemm` (transposes as flags) and the bias, activation and their gradients through the
Dense CUDA kernels.
"""

import numpy as np
from numba import cuda

from fastdnn.kernels.cuda._launch import block, cached_factory, grid, unravel4
from fastdnn.kernels.cuda.activation import LINEAR, activation_backward, bias_activation
from fastdnn.kernels.cuda.dense import column_sums, gemm


@cuda.jit
def _im2col(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, cols):
    n, H, W, C = x.shape
    rows, K = cols.shape
    # consecutive threads fill consecutive entries of a patch row: (i, j, c) with c innermost, so
    # that both the writes and (inside the input) the reads of x coalesce
    for e in range(cuda.grid(1), rows * K, cuda.gridsize(1)):
        r = e // K
        q = e - r * K
        ox = r % ow
        t = r // ow
        oy = t % oh
        b = t // oh
        c = q % C
        t = q // C
        j = t % kw
        i = t // kw
        hi = oy * sh - pad_top + i * dh
        wi = ox * sw - pad_left + j * dw
        if 0 <= hi < H and 0 <= wi < W:
            cols[r, q] = x[b, hi, wi, c]
        else:
            cols[r, q] = 0


@cached_factory
def _col2im_kernel(dtype):
    """The col2im gather for one dtype (the sum starts from a zero of the array dtype, as on the CPU)."""
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def col2im_gather(dcols, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX):
        n, H, W, C = dX.shape
        for e in range(cuda.grid(1), n * H * W * C, cuda.gridsize(1)):
            b, hi, wi, c = unravel4(e, H, W, C)
            acc = zero
            # Taps from last to first visit the patches in increasing (oy, ox): the CPU's order of addition.
            for i in range(kh - 1, -1, -1):
                ty = hi + pad_top - i * dh  # = oy sh
                if ty < 0 or ty % sh != 0:
                    continue
                oy = ty // sh
                if oy >= oh:
                    continue
                for j in range(kw - 1, -1, -1):
                    tx = wi + pad_left - j * dw  # = ox sw
                    if tx < 0 or tx % sw != 0:
                        continue
                    ox = tx // sw
                    if ox >= ow:
                        continue
                    acc += dcols[(b * oh + oy) * ow + ox, (i * kw + j) * C + c]
            dX[b, hi, wi, c] = acc

    return col2im_gather


def im2col(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, cols):
    """``cols[(b oh + oy) ow + ox, (i kw + j) C + c] = x[b, oy sh - pad_top + i dh, ox sw - pad_left + j dw, c]``.

    ``x`` is ``(n, H, W, C)``, ``cols`` is ``(n oh ow, kh kw C)``; taps outside the input read 0.
    One thread per element of ``cols``.
    """
    rows, K = cols.shape
    if rows * K == 0:
        return
    _im2col[grid(rows * K), block()](x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, cols)


def col2im(dcols, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX):
    """The adjoint of `im2col`: ``dX[b, h, w, c]`` = the sum of the entries of ``dcols`` read from there.

    A gather (one thread per element of ``dX``, every element written, no atomics): for each kernel
    tap it solves ``o s - p + i d = h`` for the output position ``o`` that read ``h`` through that tap.
    """
    if dX.size == 0:
        return
    kernel = _col2im_kernel(np.dtype(dX.dtype).name)
    kernel[grid(dX.size), block()](dcols, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX)


def conv_forward(x, K, b, code, alpha, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, cols, z, y):
    """``z = im2col(x) K + b``, ``y = f(z)``; pass ``z`` and ``y`` as one array when ``z`` need not be kept.

    Parameters as the CPU twin: ``x`` (n, H, W, C), ``K`` (kh kw C, F), ``b`` (F,) or empty, the
    activation ``code`` and ``alpha``, the geometry, the patch buffer ``cols`` (n oh ow, kh kw C),
    kept for the backward pass, and the outputs ``z``, ``y`` (n oh ow, F).
    """
    im2col(x, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, cols)
    gemm(cols, K, z)
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
    gemm(cols, g, dK, True, False)
    if db.shape[0] > 0:
        column_sums(g, db)
    if compute_dx:
        gemm(g, K, dcols, False, True)
        col2im(dcols, kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow, dX)
