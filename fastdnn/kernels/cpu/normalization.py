"""Batch normalization kernels over the rows of a 2-D array (the last axis holds the features).

Training, with ``m`` rows::

    mu = mean_rows x,  var = mean_rows (x - mu)^2,  inv_std = 1 / sqrt(var + epsilon)
    x_hat = (x - mu) inv_std,  y = gamma x_hat + beta
    moving_mean = momentum moving_mean + (1 - momentum) mu      (the same for the variance; Keras
                                                                 uses the biased batch variance)
    dL/dbeta = sum_rows dL/dy,  dL/dgamma = sum_rows dL/dy x_hat
    dL/dx = gamma inv_std (dL/dy - dL/dbeta / m - x_hat dL/dgamma / m)

Inference uses the moving statistics: ``y = x scale + shift`` with ``scale = gamma / sqrt(moving_var
+ epsilon)`` and ``shift = beta - moving_mean scale``, a constant affine map whose input gradient
is ``dL/dy scale``.

``gamma`` or ``beta`` may be empty arrays (``scale=False``, ``center=False``): 1 and 0. Scalars
(``inv_m = 1 / m``, ``epsilon``, ``momentum``) come in the array dtype; sums run down the rows with
the features innermost, so the loops vectorize.
"""

import math

import numpy as np

from fastdnn.kernels.jit import jit

_ONE = np.float32(1.0)


@jit
def batch_norm_train_forward(x, gamma, beta, inv_m, epsilon, momentum, moving_mean, moving_var, mean, inv_std, x_hat, y):
    """Normalize with the batch statistics (into ``mean``, ``inv_std``, ``x_hat``, ``y``), update the moving ones."""
    m, C = x.shape
    mean[:] = 0
    for i in range(m):
        for j in range(C):
            mean[j] += x[i, j]
    for j in range(C):
        mean[j] *= inv_m
    inv_std[:] = 0  # the variance, until turned into 1 / sqrt(var + epsilon) below
    for i in range(m):
        for j in range(C):
            d = x[i, j] - mean[j]
            inv_std[j] += d * d
    keep = _ONE - momentum
    for j in range(C):
        var = inv_std[j] * inv_m
        moving_mean[j] = momentum * moving_mean[j] + keep * mean[j]
        moving_var[j] = momentum * moving_var[j] + keep * var
        inv_std[j] = _ONE / math.sqrt(var + epsilon)
    _normalize(x, mean, inv_std, gamma, beta, x_hat, y)


@jit
def _normalize(x, mean, inv_std, gamma, beta, x_hat, y):
    """``x_hat = (x - mean) inv_std``, ``y = gamma x_hat + beta`` (empty gamma / beta: 1 / 0)."""
    m, C = x.shape
    has_gamma = gamma.shape[0] > 0
    has_beta = beta.shape[0] > 0
    for i in range(m):
        for j in range(C):
            h = (x[i, j] - mean[j]) * inv_std[j]
            x_hat[i, j] = h
            if has_gamma:
                h = h * gamma[j]
            if has_beta:
                h = h + beta[j]
            y[i, j] = h


@jit
def batch_norm_inference_forward(x, gamma, beta, epsilon, moving_mean, moving_var, scale, shift, y):
    """``y = x scale + shift`` from the moving statistics (``scale``, ``shift``: (C,) work arrays)."""
    m, C = x.shape
    for j in range(C):
        s = _ONE / math.sqrt(moving_var[j] + epsilon)
        if gamma.shape[0] > 0:
            s = s * gamma[j]
        scale[j] = s
        shift[j] = -moving_mean[j] * s
        if beta.shape[0] > 0:
            shift[j] += beta[j]
    for i in range(m):
        for j in range(C):
            y[i, j] = x[i, j] * scale[j] + shift[j]


@jit
def batch_norm_frozen_forward(x, gamma, beta, epsilon, moving_mean, moving_var, mean, inv_std, x_hat, y):
    """Training forward of a frozen layer: normalize with the moving statistics, keeping ``x_hat``."""
    for j in range(x.shape[1]):
        mean[j] = moving_mean[j]
        inv_std[j] = _ONE / math.sqrt(moving_var[j] + epsilon)
    _normalize(x, mean, inv_std, gamma, beta, x_hat, y)


@jit
def batch_norm_backward(
    x_hat, inv_std, gamma, dLdY, inv_m, batch_statistics, sum_g, sum_gx, factor, dgamma, dbeta, dX, compute_dx
):
    """Gradients: ``dgamma``, ``dbeta`` (when non-empty) and ``dX`` (when ``compute_dx``).

    ``batch_statistics``: the forward pass normalized with the batch's own mean and variance (training),
    so ``dX`` has the two correction terms; otherwise with constants (the moving statistics of a frozen
    layer), and ``dX = gamma inv_std dL/dy``. ``sum_g``, ``sum_gx``, ``factor``: (C,) work arrays.
    """
    m, C = dLdY.shape
    sum_g[:] = 0
    sum_gx[:] = 0
    for i in range(m):
        for j in range(C):
            g = dLdY[i, j]
            sum_g[j] += g
            sum_gx[j] += g * x_hat[i, j]
    # Loops, not ``dbeta[:] = sum_g``: numba's array-to-slice copy compiles a shape-mismatch message
    # formatter (f-strings of int tuples) that took 3 s of the first run's compile time.
    if dbeta.shape[0] > 0:
        for j in range(C):
            dbeta[j] = sum_g[j]
    if dgamma.shape[0] > 0:
        for j in range(C):
            dgamma[j] = sum_gx[j]
    if not compute_dx:
        return
    for j in range(C):
        factor[j] = inv_std[j] * gamma[j] if gamma.shape[0] > 0 else inv_std[j]
    if batch_statistics:
        for j in range(C):
            sum_g[j] *= inv_m
            sum_gx[j] *= inv_m
        for i in range(m):
            for j in range(C):
                dX[i, j] = factor[j] * (dLdY[i, j] - sum_g[j] - x_hat[i, j] * sum_gx[j])
    else:
        for i in range(m):
            for j in range(C):
                dX[i, j] = factor[j] * dLdY[i, j]


# -- synchronized batch normalization: statistics of a batch split over data-parallel processes ----
#
# Each process holds some rows of the global batch. The forward pass sums its rows into ``sums``, the
# processes add their ``sums`` (one allreduce), and every process normalizes its rows with the global
# statistics; the backward pass does the same with the two per-feature reductions of dL/dx. The sums
# are float64 and taken around a shift that every process holds (the moving mean), so the one-pass
# variance ``E[(x - s)^2] - E[x - s]^2`` does not cancel catastrophically.


@jit
def batch_norm_shifted_sums(x, shift, sums):
    """``sums[:C] = sum_rows (x - shift)``, ``sums[C:2C] = sum_rows (x - shift)^2``, ``sums[2C] = rows`` (float64)."""
    m, C = x.shape
    sums[:] = 0.0
    for i in range(m):
        for j in range(C):
            d = np.float64(x[i, j]) - np.float64(shift[j])
            sums[j] += d
            sums[C + j] += d * d
    sums[2 * C] = m


@jit
def batch_norm_global_forward(x, sums, gamma, beta, epsilon, momentum, moving_mean, moving_var, mean, inv_std, x_hat, y):
    """Normalize this process's rows ``x`` with the statistics of the summed `batch_norm_shifted_sums`
    (shift: ``moving_mean`` as it was when they were taken), then update the moving statistics."""
    C = x.shape[1]
    rows = sums[2 * C]
    keep = 1.0 - np.float64(momentum)
    for j in range(C):
        d = sums[j] / rows
        var = max(sums[C + j] / rows - d * d, 0.0)
        mu = np.float64(moving_mean[j]) + d
        mean[j] = mu
        inv_std[j] = 1.0 / math.sqrt(var + np.float64(epsilon))
        moving_mean[j] = momentum * moving_mean[j] + keep * mu
        moving_var[j] = momentum * moving_var[j] + keep * var
    _normalize(x, mean, inv_std, gamma, beta, x_hat, y)


@jit
def batch_norm_gradient_sums(x_hat, dLdY, sums):
    """``sums[:C] = sum_rows dL/dy`` (dL/dbeta), ``sums[C:] = sum_rows dL/dy x_hat`` (dL/dgamma), in float64."""
    m, C = dLdY.shape
    sums[:] = 0.0
    for i in range(m):
        for j in range(C):
            g = np.float64(dLdY[i, j])
            sums[j] += g
            sums[C + j] += g * x_hat[i, j]


@jit
def batch_norm_global_backward(x_hat, inv_std, gamma, dLdY, sums, inv_m, factor, dX):
    """``dX`` of this process's rows from the summed `batch_norm_gradient_sums` of every process:
    ``gamma inv_std (dL/dy - sum dL/dy / m - x_hat sum (dL/dy x_hat) / m)`` with the global ``m``."""
    m, C = dLdY.shape
    for j in range(C):
        factor[j] = inv_std[j] * gamma[j] if gamma.shape[0] > 0 else inv_std[j]
    for i in range(m):
        for j in range(C):
            dX[i, j] = factor[j] * (dLdY[i, j] - sums[j] * inv_m - x_hat[i, j] * (sums[C + j] * inv_m))
