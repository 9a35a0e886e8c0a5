"""CUDA twins of ``kernels.cpu.dense``: the matrix products, with everything around them fused.

Forward:   z = x W + b,  y = f(z)
Backward:  dL/dz = dL/dy * f'(z),  dL/dW = x^T dL/dz,  dL/db = sum_rows dL/dz,  dL/dx = dL/dz W^T

Products go through `gemm`: fastdnn's tiled shared-memory kernel (``config.GEMM = "numba"``), or
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
    kernel = _gemm_kernel(tile, np.dtype(c.dtype).name)
    kernel[(-(-n // tile), -(-m // tile)), (tile, tile)](a, b, c, trans_a, trans_b)


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
