"""CUDA twins of ``kernels.cpu.normalization``: batch normalization over the rows of a 2-D array.

The formulas are the CPU module's (read its docstring): batch mean and biased variance per feature
(two passes, as on the CPU), ``x_hat = (x - mu) inv_std``, ``y = gamma x_hat + beta``, the moving
statistics updated as ``momentum moving + (1 - momentum) batch``, and the backward sums
``sum_rows dL/dy`` and ``sum_rows dL/dy x_hat``.

Per-feature reductions over the rows: a block of ``TX x TY`` threads owns ``TX`` neighbouring
features (so a warp reads ``TX`` neighbouring words of a row: coalesced), its ``TY`` rows of threads
stride down the rows, and the partial sums meet in a shared-memory tree. The order of the sums
differs from the CPU's serial one (float32 results agree within the `fastdnn.verify.agreement`
tolerances) but is fixed: no atomics, the same result on every run. Everything elementwise
(normalizing, the inference affine map, ``dL/dx``) is one grid-stride loop over all ``m C``
elements. Scalar arithmetic stays in the array dtype, as on the CPU.
"""

import math

import numpy as np
from numba import cuda

from fastdnn.kernels.cuda._launch import MAX_BLOCKS, block, cached_factory, grid, numba_type

#: Most features per reduction block: one warp's width, so that its loads coalesce.
_MAX_TILE_FEATURES = 32


def _reduction_geometry(C):
    """``(blocks, (TX, TY), threads)`` of a per-feature reduction over ``C`` features."""
    threads = block()
    width = 1
    while width < C:
        width *= 2
    tx = max(1, min(_MAX_TILE_FEATURES, max(1, threads // 2), width))  # at least two rows of threads
    ty = max(1, threads // tx)
    return min(-(-C // tx), MAX_BLOCKS), (tx, ty), threads


@cuda.jit(device=True)
def _sum_down(part, tx, ty, TX, TY):
    """Tree-sum ``part[ty * TX + tx]`` over ``ty`` into row 0 (any ``TY``; every thread must call it)."""
    half = 1
    while half < TY:
        half *= 2
    half //= 2
    while half > 0:
        if ty < half and ty + half < TY:
            part[ty * TX + tx] += part[(ty + half) * TX + tx]
        cuda.syncthreads()
        half //= 2


@cached_factory
def _reduction_kernels(threads, dtype):
    """The per-feature reduction kernels for blocks of ``threads`` threads and arrays of ``dtype``."""
    scalar = numba_type(dtype)
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)

    @cuda.jit
    def batch_statistics(x, inv_m, epsilon, momentum, moving_mean, moving_var, mean, inv_std):
        part = cuda.shared.array(threads, scalar)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        TX = cuda.blockDim.x
        TY = cuda.blockDim.y
        m, C = x.shape
        keep = one - momentum
        # every thread runs every tile (no early exit): the tree sums synchronize the whole block
        for tile in range(cuda.blockIdx.x, (C + TX - 1) // TX, cuda.gridDim.x):
            j = tile * TX + tx
            acc = zero
            if j < C:
                for i in range(ty, m, TY):
                    acc += x[i, j]
            part[ty * TX + tx] = acc
            cuda.syncthreads()
            _sum_down(part, tx, ty, TX, TY)
            mu = part[tx] * inv_m
            cuda.syncthreads()  # all have read the mean before the variance pass reuses part
            acc = zero
            if j < C:
                for i in range(ty, m, TY):
                    d = x[i, j] - mu
                    acc += d * d
            part[ty * TX + tx] = acc
            cuda.syncthreads()
            _sum_down(part, tx, ty, TX, TY)
            if ty == 0 and j < C:
                var = part[tx] * inv_m
                moving_mean[j] = momentum * moving_mean[j] + keep * mu
                moving_var[j] = momentum * moving_var[j] + keep * var
                mean[j] = mu
                inv_std[j] = one / math.sqrt(var + epsilon)
            cuda.syncthreads()  # row 0 is read before the next tile overwrites it

    @cuda.jit
    def gradient_sums(x_hat, inv_std, gamma, dLdY, inv_m, batch_stats, sum_g, sum_gx, factor, dgamma, dbeta, compute_dx):
        # one shared array per line: the simulator keys them by source line
        part_g = cuda.shared.array(threads, scalar)
        part_gx = cuda.shared.array(threads, scalar)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        TX = cuda.blockDim.x
        TY = cuda.blockDim.y
        m, C = dLdY.shape
        for tile in range(cuda.blockIdx.x, (C + TX - 1) // TX, cuda.gridDim.x):
            j = tile * TX + tx
            acc_g = zero
            acc_gx = zero
            if j < C:
                for i in range(ty, m, TY):
                    g = dLdY[i, j]
                    acc_g += g
                    acc_gx += g * x_hat[i, j]
            part_g[ty * TX + tx] = acc_g
            part_gx[ty * TX + tx] = acc_gx
            cuda.syncthreads()
            _sum_down(part_g, tx, ty, TX, TY)
            _sum_down(part_gx, tx, ty, TX, TY)
            if ty == 0 and j < C:
                s_g = part_g[tx]
                s_gx = part_gx[tx]
                if dbeta.shape[0] > 0:
                    dbeta[j] = s_g
                if dgamma.shape[0] > 0:
                    dgamma[j] = s_gx
                if compute_dx:
                    factor[j] = inv_std[j] * gamma[j] if gamma.shape[0] > 0 else inv_std[j]
                    if batch_stats:  # the work arrays end as on the CPU: scaled by 1 / m only here
                        s_g *= inv_m
                        s_gx *= inv_m
                sum_g[j] = s_g
                sum_gx[j] = s_gx
            cuda.syncthreads()

    return batch_statistics, gradient_sums


@cached_factory
def _feature_kernels(dtype):
    """One thread per feature: the constants of the inference and frozen forward passes."""
    one = np.dtype(dtype).type(1)

    @cuda.jit
    def affine_constants(gamma, beta, epsilon, moving_mean, moving_var, scale, shift):
        for j in range(cuda.grid(1), scale.shape[0], cuda.gridsize(1)):
            s = one / math.sqrt(moving_var[j] + epsilon)
            if gamma.shape[0] > 0:
                s = s * gamma[j]
            scale[j] = s
            t = -moving_mean[j] * s
            if beta.shape[0] > 0:
                t += beta[j]
            shift[j] = t

    @cuda.jit
    def moving_statistics(epsilon, moving_mean, moving_var, mean, inv_std):
        for j in range(cuda.grid(1), mean.shape[0], cuda.gridsize(1)):
            mean[j] = moving_mean[j]
            inv_std[j] = one / math.sqrt(moving_var[j] + epsilon)

    return affine_constants, moving_statistics


@cuda.jit
def _normalize(x, mean, inv_std, gamma, beta, x_hat, y):
    m, C = x.shape
    has_gamma = gamma.shape[0] > 0
    has_beta = beta.shape[0] > 0
    for e in range(cuda.grid(1), m * C, cuda.gridsize(1)):
        i = e // C
        j = e - i * C
        h = (x[i, j] - mean[j]) * inv_std[j]
        x_hat[i, j] = h
        if has_gamma:
            h = h * gamma[j]
        if has_beta:
            h = h + beta[j]
        y[i, j] = h


@cuda.jit
def _affine(x, scale, shift, y):
    m, C = x.shape
    for e in range(cuda.grid(1), m * C, cuda.gridsize(1)):
        i = e // C
        j = e - i * C
        y[i, j] = x[i, j] * scale[j] + shift[j]


@cuda.jit
def _input_gradient(x_hat, dLdY, factor, sum_g, sum_gx, batch_stats, dX):
    m, C = dLdY.shape
    for e in range(cuda.grid(1), m * C, cuda.gridsize(1)):
        i = e // C
        j = e - i * C
        if batch_stats:
            dX[i, j] = factor[j] * (dLdY[i, j] - sum_g[j] - x_hat[i, j] * sum_gx[j])
        else:
            dX[i, j] = factor[j] * dLdY[i, j]


def _dtype(array):
    return np.dtype(array.dtype).name


def batch_norm_train_forward(x, gamma, beta, inv_m, epsilon, momentum, moving_mean, moving_var, mean, inv_std, x_hat, y):
    """Normalize with the batch statistics (into ``mean``, ``inv_std``, ``x_hat``, ``y``), update the moving ones."""
    m, C = x.shape
    if C == 0:
        return
    blocks, shape, threads = _reduction_geometry(C)
    statistics, _ = _reduction_kernels(threads, _dtype(x))
    statistics[blocks, shape](x, inv_m, epsilon, momentum, moving_mean, moving_var, mean, inv_std)
    if m:
        _normalize[grid(m * C), block()](x, mean, inv_std, gamma, beta, x_hat, y)


def batch_norm_inference_forward(x, gamma, beta, epsilon, moving_mean, moving_var, scale, shift, y):
    """``y = x scale + shift`` from the moving statistics (``scale``, ``shift``: (C,) work arrays)."""
    m, C = x.shape
    if C == 0:
        return
    constants, _ = _feature_kernels(_dtype(x))
    constants[grid(C), block()](gamma, beta, epsilon, moving_mean, moving_var, scale, shift)
    if m:
        _affine[grid(m * C), block()](x, scale, shift, y)


def batch_norm_frozen_forward(x, gamma, beta, epsilon, moving_mean, moving_var, mean, inv_std, x_hat, y):
    """Training forward of a frozen layer: normalize with the moving statistics, keeping ``x_hat``."""
    m, C = x.shape
    if C == 0:
        return
    _, statistics = _feature_kernels(_dtype(x))
    statistics[grid(C), block()](epsilon, moving_mean, moving_var, mean, inv_std)
    if m:
        _normalize[grid(m * C), block()](x, mean, inv_std, gamma, beta, x_hat, y)


def batch_norm_backward(
    x_hat, inv_std, gamma, dLdY, inv_m, batch_statistics, sum_g, sum_gx, factor, dgamma, dbeta, dX, compute_dx
):
    """Gradients: ``dgamma``, ``dbeta`` (when non-empty) and ``dX`` (when ``compute_dx``).

    ``batch_statistics``: the forward pass used the batch's own statistics, so ``dX`` has the two
    correction terms; otherwise ``dX = gamma inv_std dL/dy``. ``sum_g``, ``sum_gx``, ``factor``: (C,)
    work arrays, left as the CPU twin leaves them.
    """
    m, C = dLdY.shape
    if C == 0:
        return
    blocks, shape, threads = _reduction_geometry(C)
    _, sums = _reduction_kernels(threads, _dtype(dLdY))
    sums[blocks, shape](x_hat, inv_std, gamma, dLdY, inv_m, batch_statistics, sum_g, sum_gx, factor, dgamma, dbeta, compute_dx)
    if compute_dx and m:
        _input_gradient[grid(m * C), block()](x_hat, dLdY, factor, sum_g, sum_gx, batch_statistics, dX)


# -- synchronized batch normalization (the CPU module's second half): float64 per-feature sums of a
# -- shard, and the forward / backward passes of a shard from the sums of every process ------------


@cached_factory
def _synchronized_reductions(threads):
    """Per-feature float64 sums (the same tiles and tree as `_reduction_kernels`)."""
    f64 = numba_type("float64")

    @cuda.jit
    def shifted_sums(x, shift, sums):
        # one shared array per line: the simulator keys them by source line
        part_d = cuda.shared.array(threads, f64)
        part_dd = cuda.shared.array(threads, f64)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        TX = cuda.blockDim.x
        TY = cuda.blockDim.y
        m, C = x.shape
        if cuda.blockIdx.x == 0 and tx == 0 and ty == 0:
            sums[2 * C] = m
        for tile in range(cuda.blockIdx.x, (C + TX - 1) // TX, cuda.gridDim.x):
            j = tile * TX + tx
            acc_d = 0.0
            acc_dd = 0.0
            if j < C:
                for i in range(ty, m, TY):
                    d = np.float64(x[i, j]) - np.float64(shift[j])
                    acc_d += d
                    acc_dd += d * d
            part_d[ty * TX + tx] = acc_d
            part_dd[ty * TX + tx] = acc_dd
            cuda.syncthreads()
            _sum_down(part_d, tx, ty, TX, TY)
            _sum_down(part_dd, tx, ty, TX, TY)
            if ty == 0 and j < C:
                sums[j] = part_d[tx]
                sums[C + j] = part_dd[tx]
            cuda.syncthreads()

    @cuda.jit
    def gradient_sums(x_hat, dLdY, sums):
        part_g = cuda.shared.array(threads, f64)
        part_gx = cuda.shared.array(threads, f64)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        TX = cuda.blockDim.x
        TY = cuda.blockDim.y
        m, C = dLdY.shape
        for tile in range(cuda.blockIdx.x, (C + TX - 1) // TX, cuda.gridDim.x):
            j = tile * TX + tx
            acc_g = 0.0
            acc_gx = 0.0
            if j < C:
                for i in range(ty, m, TY):
                    g = np.float64(dLdY[i, j])
                    acc_g += g
                    acc_gx += g * x_hat[i, j]
            part_g[ty * TX + tx] = acc_g
            part_gx[ty * TX + tx] = acc_gx
            cuda.syncthreads()
            _sum_down(part_g, tx, ty, TX, TY)
            _sum_down(part_gx, tx, ty, TX, TY)
            if ty == 0 and j < C:
                sums[j] = part_g[tx]
                sums[C + j] = part_gx[tx]
            cuda.syncthreads()

    return shifted_sums, gradient_sums


@cuda.jit
def _global_statistics(sums, epsilon, momentum, moving_mean, moving_var, mean, inv_std):
    C = mean.shape[0]
    rows = sums[2 * C]
    keep = 1.0 - np.float64(momentum)
    for j in range(cuda.grid(1), C, cuda.gridsize(1)):
        d = sums[j] / rows
        var = max(sums[C + j] / rows - d * d, 0.0)
        mu = np.float64(moving_mean[j]) + d
        mean[j] = mu
        inv_std[j] = 1.0 / math.sqrt(var + np.float64(epsilon))
        moving_mean[j] = momentum * moving_mean[j] + keep * mu
        moving_var[j] = momentum * moving_var[j] + keep * var


@cuda.jit
def _global_factor(inv_std, gamma, factor):
    for j in range(cuda.grid(1), factor.shape[0], cuda.gridsize(1)):
        factor[j] = inv_std[j] * gamma[j] if gamma.shape[0] > 0 else inv_std[j]


@cuda.jit
def _global_input_gradient(x_hat, dLdY, factor, sums, inv_m, dX):
    m, C = dLdY.shape
    for e in range(cuda.grid(1), m * C, cuda.gridsize(1)):
        i = e // C
        j = e - i * C
        dX[i, j] = factor[j] * (dLdY[i, j] - sums[j] * inv_m - x_hat[i, j] * (sums[C + j] * inv_m))


def batch_norm_shifted_sums(x, shift, sums):
    """``sums[:C] = sum_rows (x - shift)``, ``sums[C:2C] = sum_rows (x - shift)^2``, ``sums[2C] = rows`` (float64)."""
    C = x.shape[1]
    blocks, shape, threads = _reduction_geometry(max(C, 1))
    kernel, _ = _synchronized_reductions(threads)
    kernel[blocks, shape](x, shift, sums)


def batch_norm_global_forward(x, sums, gamma, beta, epsilon, momentum, moving_mean, moving_var, mean, inv_std, x_hat, y):
    """Normalize this process's rows with the statistics of the summed sums (shift: ``moving_mean``
    as it was), then update the moving statistics."""
    m, C = x.shape
    if C == 0:
        return
    _global_statistics[grid(C), block()](sums, epsilon, momentum, moving_mean, moving_var, mean, inv_std)
    if m:
        _normalize[grid(m * C), block()](x, mean, inv_std, gamma, beta, x_hat, y)


def batch_norm_gradient_sums(x_hat, dLdY, sums):
    """``sums[:C] = sum_rows dL/dy``, ``sums[C:] = sum_rows dL/dy x_hat``, in float64."""
    C = dLdY.shape[1]
    if C == 0:
        return
    blocks, shape, threads = _reduction_geometry(C)
    _, kernel = _synchronized_reductions(threads)
    kernel[blocks, shape](x_hat, dLdY, sums)


def batch_norm_global_backward(x_hat, inv_std, gamma, dLdY, sums, inv_m, factor, dX):
    """``dX`` of this process's rows from the summed gradient sums of every process (global ``1 / m``)."""
    m, C = dLdY.shape
    if C == 0:
        return
    _global_factor[grid(C), block()](inv_std, gamma, factor)
    if m:
        _global_input_gradient[grid(m * C), block()](x_hat, dLdY, factor, sums, np.float64(inv_m), dX)
