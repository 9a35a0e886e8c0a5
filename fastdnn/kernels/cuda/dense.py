"""CUDA twins of ``kernels.cpu.dense``: the matrix products, with everything around them fused.

Forward:   z = x W + b,  y = f(z)
Backward:  dL/dz = dL/dy * f'(z),  dL/dW = x^T dL/dz,  dL/db = sum_rows dL/dz,  dL/dx = dL/dz W^T

Products go through `gemm`: fastdnn's tiled shared-memory kernel (``config.GEMM = "numba"``; with
``config.CUDA_GEMM_REG > 1`` each thread computes a register block of outputs), or
cuBLAS through CuPy (``config.GEMM = "cupy"``, when CuPy is installed). Transposed operands are
flags, not copies.
"""

import numpy as np
from numba import cuda

from fastdnn import config
from fastdnn.kernels.cuda._launch import block, cached_factory, grid, numba_type
from fastdnn.kernels.cuda.activation import LINEAR, activation_backward, bias_activation


@cached_factory
def _gemm_kernel(tile, dtype):
    """``c = op(a) op(b)`` with ``tile x tile`` blocks; each thread owns one element of ``c``."""
    scalar = numba_type(dtype)
    zero = np.dtype(dtype).type(0)

    @cuda.jit
    def gemm_kernel(a, b, c, trans_a, trans_b):
        # One shared array per line: the simulator keys them by source line.
        tile_a = cuda.shared.array((tile, tile), scalar)
        tile_b = cuda.shared.array((tile, tile), scalar)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * tile + ty
        col = cuda.blockIdx.x * tile + tx
        m, n = c.shape
        k_total = a.shape[0] if trans_a else a.shape[1]
        acc = zero
        for t in range((k_total + tile - 1) // tile):
            k = t * tile + tx
            if row < m and k < k_total:
                tile_a[ty, tx] = a[k, row] if trans_a else a[row, k]
            else:
                tile_a[ty, tx] = zero
            k = t * tile + ty
            if col < n and k < k_total:
                tile_b[ty, tx] = b[col, k] if trans_b else b[k, col]
            else:
                tile_b[ty, tx] = zero
            cuda.syncthreads()
            for kk in range(tile):
                acc += tile_a[ty, kk] * tile_b[kk, tx]
            cuda.syncthreads()
        if row < m and col < n:
            c[row, col] = acc

    return gemm_kernel


@cached_factory
def _gemm_blocked_kernel(tile, reg, dtype):
    """``c = op(a) op(b)`` with register blocking: a ``tile x tile`` block of threads computes a
    ``(tile reg) x (tile reg)`` block of ``c``, each thread ``reg x reg`` elements strided by ``tile``
    (so neighbouring threads write neighbouring words and read shared memory without bank conflicts).
    The k-slices of ``op(a)`` and ``op(b)`` are staged in shared memory, ``tile`` deep; each thread
    reads its ``reg`` values of each slice into registers once per k, then does ``reg * reg`` FMAs.
    """
    scalar = numba_type(dtype)
    zero = np.dtype(dtype).type(0)
    span = tile * reg  # rows (and columns) of c per block
    # One padding word per slice row: a slice staged along k (a not transposed, b transposed) has
    # neighbouring threads writing words `span` apart, all in one bank when span is a multiple of 32.
    width = span + 1
    loads = reg  # elements of each staged slice per thread: span * tile / (tile * tile)

    @cuda.jit
    def gemm_blocked(a, b, c, trans_a, trans_b):
        # One shared array per line: the simulator keys them by source line.
        slice_a = cuda.shared.array((tile, width), scalar)
        slice_b = cuda.shared.array((tile, width), scalar)
        acc = cuda.local.array((reg, reg), scalar)
        left = cuda.local.array(reg, scalar)
        right = cuda.local.array(reg, scalar)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * tile + tx
        row0 = cuda.blockIdx.y * span
        col0 = cuda.blockIdx.x * span
        m, n = c.shape
        k_total = a.shape[0] if trans_a else a.shape[1]
        for i in range(reg):
            for j in range(reg):
                acc[i, j] = zero
        for k0 in range(0, k_total, tile):
            for step in range(loads):
                e = tid + step * tile * tile
                # walk along the contiguous axis of each operand, so that loads coalesce
                if trans_a:  # a is (k, m)
                    mm = e % span
                    kk = e // span
                    r = row0 + mm
                    k = k0 + kk
                    slice_a[kk, mm] = a[k, r] if (r < m and k < k_total) else zero
                else:  # a is (m, k)
                    kk = e % tile
                    mm = e // tile
                    r = row0 + mm
                    k = k0 + kk
                    slice_a[kk, mm] = a[r, k] if (r < m and k < k_total) else zero
                if trans_b:  # b is (n, k)
                    kk = e % tile
                    nn = e // tile
                    q = col0 + nn
                    k = k0 + kk
                    slice_b[kk, nn] = b[q, k] if (q < n and k < k_total) else zero
                else:  # b is (k, n)
                    nn = e % span
                    kk = e // span
                    q = col0 + nn
                    k = k0 + kk
                    slice_b[kk, nn] = b[k, q] if (q < n and k < k_total) else zero
            cuda.syncthreads()
            for kk in range(tile):
                for i in range(reg):
                    left[i] = slice_a[kk, ty + i * tile]
                for j in range(reg):
                    right[j] = slice_b[kk, tx + j * tile]
                for i in range(reg):
                    for j in range(reg):
                        acc[i, j] += left[i] * right[j]
            cuda.syncthreads()
        for i in range(reg):
            r = row0 + ty + i * tile
            if r < m:
                for j in range(reg):
                    q = col0 + tx + j * tile
                    if q < n:
                        c[r, q] = acc[i, j]

    return gemm_blocked


def _cupy():
    try:
        import cupy
    except ImportError as error:  # pragma: no cover - needs CuPy
        raise ValueError(
            f"config.GEMM: 'cupy' needs CuPy (pip install cupy-cuda12x), which is not importable ({error}); "
            f"set fastdnn.config.GEMM = 'numba'"
        ) from None
    return cupy


def gemm(a, b, c, trans_a=False, trans_b=False):
    """``c = op(a) op(b)`` with ``op`` a transpose where asked (2-D device arrays, one dtype).

    ``config.GEMM`` picks fastdnn's tiled kernel (``"numba"``) or cuBLAS via CuPy (``"cupy"``).
    """
    m, n = c.shape
    if m == 0 or n == 0:
        return
    if config.GEMM == "cupy":  # pragma: no cover - needs a GPU and CuPy
        cupy = _cupy()
        left = cupy.asarray(a)
        right = cupy.asarray(b)
        cupy.matmul(left.T if trans_a else left, right.T if trans_b else right, out=cupy.asarray(c))
        return
    if config.GEMM != "numba":
        raise ValueError(f"config.GEMM: expected 'numba' or 'cupy', received {config.GEMM!r}")
    tile = int(config.CUDA_TILE)
    reg = int(config.CUDA_GEMM_REG)
    if reg <= 1:
        kernel = _gemm_kernel(tile, np.dtype(c.dtype).name)
        kernel[(-(-n // tile), -(-m // tile)), (tile, tile)](a, b, c, trans_a, trans_b)
        return
    span = tile * reg
    kernel = _gemm_blocked_kernel(tile, reg, np.dtype(c.dtype).name)
    kernel[(-(-n // span), -(-m // span)), (tile, tile)](a, b, c, trans_a, trans_b)


@cuda.jit
def _column_sums(a, out):
    n, d = a.shape
    for j in range(cuda.grid(1), d, cuda.gridsize(1)):
        total = 0.0
        for i in range(n):
            total += a[i, j]
        out[j] = total


def column_sums(a, out):
    """``out[j] = sum_i a[i, j]``: one thread per column, so neighbouring threads read neighbouring words."""
    if out.shape[0] == 0:
        return
    _column_sums[grid(out.shape[0]), block()](a, out)


def dense_forward(x, W, b, code, alpha, z, y):
    """``z = x W + b`` and ``y = f(z)``; pass ``z`` and ``y`` as one array when ``z`` need not be kept."""
    gemm(x, W, z)
    bias_activation(z, b, code, alpha, y)


def dense_backward(x, W, z, y, dLdY, code, alpha, dLdZ, dW, db, dX, compute_dx):
    """Gradients of a Dense layer into ``dLdZ``, ``dW``, ``db`` (if non-empty) and ``dX`` (if ``compute_dx``).

    With ``code == LINEAR``, ``dLdY`` is ``dL/dz`` (also how a fused loss hands in the logits gradient).
    """
    if code == LINEAR:
        g = dLdY
    else:
        activation_backward(code, z, y, dLdY, alpha, dLdZ)
        g = dLdZ
    gemm(x, g, dW, True, False)
    if db.shape[0] > 0:
        column_sums(g, db)
    if compute_dx:
        gemm(g, W, dX, False, True)
