"""Agreement cases of the batch-normalization kernels (``fastdnn.kernels.cuda.normalization`` against the CPU twins).

Every branch: gamma and beta present or empty (``scale=False``, ``center=False``), training with the
batch statistics, inference and the frozen forward with the moving ones, the backward pass with
batch or constant statistics and with or without ``dL/dx``. The work arrays are compared too.
Synchronized batch normalization: the float64 sums of a shard, and the forward and backward passes
of a shard from the sums of a larger (global) batch.
"""

import numpy as np


def cases(rng, dtype, n, d, k):
    """Yield ``(name, family, function, args, output positions)`` in the format of `fastdnn.verify.agreement._cases`."""
    scalar = np.dtype(dtype).type
    m, C = 2 * n + 1, d  # more rows than the reduction block has threads, an odd count

    def arr(*shape, low=-2.0, high=2.0):
        return rng.uniform(low, high, size=shape).astype(dtype)

    def zeros(*shape):
        return np.zeros(shape, dtype)

    empty = np.empty(0, dtype)
    inv_m, epsilon, momentum = scalar(1.0 / m), scalar(1e-3), scalar(0.9)
    for has_gamma in (True, False):
        for has_beta in (True, False):
            tag = f"gamma={has_gamma},beta={has_beta}"
            gamma = arr(C) if has_gamma else empty
            beta = arr(C) if has_beta else empty
            x = arr(m, C) + 3.0  # a mean far from 0: the two-pass variance matters
            moving_mean, moving_var = arr(C), arr(C, low=0.1, high=2.0)
            yield (f"batch_norm_train_forward[{tag}]", "normalization", "batch_norm_train_forward",
                   [x, gamma, beta, inv_m, epsilon, momentum, moving_mean, moving_var, zeros(C), zeros(C), zeros(m, C), zeros(m, C)],
                   [6, 7, 8, 9, 10, 11])
            yield (f"batch_norm_inference_forward[{tag}]", "normalization", "batch_norm_inference_forward",
                   [x, gamma, beta, epsilon, moving_mean, moving_var, zeros(C), zeros(C), zeros(m, C)], [6, 7, 8])
            yield (f"batch_norm_frozen_forward[{tag}]", "normalization", "batch_norm_frozen_forward",
                   [x, gamma, beta, epsilon, moving_mean, moving_var, zeros(C), zeros(C), zeros(m, C), zeros(m, C)], [6, 7, 8, 9])
    for has_gamma, has_beta in ((True, True), (False, False), (True, False)):
        for batch_statistics in (True, False):
            for compute_dx in (True, False):
                tag = f"gamma={has_gamma},beta={has_beta},batch={batch_statistics},dx={compute_dx}"
                x_hat = arr(m, C)
                dgamma = zeros(C) if has_gamma else empty
                dbeta = zeros(C) if has_beta else empty
                dX = zeros(m, C) if compute_dx else zeros(0, C)
                yield (f"batch_norm_backward[{tag}]", "normalization", "batch_norm_backward",
                       [x_hat, arr(C, low=0.5, high=2.0), arr(C) if has_gamma else empty, arr(m, C), inv_m, batch_statistics,
                        zeros(C), zeros(C), zeros(C), dgamma, dbeta, dX, compute_dx],
                       [6, 7, 8, 9, 10, 11])
    for has_gamma, has_beta in ((True, True), (False, False), (True, False), (False, True)):
        tag = f"gamma={has_gamma},beta={has_beta}"
        gamma = arr(C) if has_gamma else empty
        beta = arr(C) if has_beta else empty
        batch = arr(m + 5, C) + 3.0  # the global batch; this process holds its first m rows
        moving_mean, moving_var = arr(C), arr(C, low=0.1, high=2.0)
        sums = np.zeros(2 * C + 1)
        sums[:C] = (batch - moving_mean).sum(axis=0)
        sums[C : 2 * C] = ((batch - moving_mean) ** 2).sum(axis=0)
        sums[2 * C] = batch.shape[0]
        yield (f"batch_norm_global_forward[{tag}]", "normalization", "batch_norm_global_forward",
               [batch[:m], sums, gamma, beta, epsilon, momentum, moving_mean, moving_var, zeros(C), zeros(C), zeros(m, C), zeros(m, C)],
               [6, 7, 8, 9, 10, 11])
    yield ("batch_norm_shifted_sums", "normalization", "batch_norm_shifted_sums",
           [arr(m, C) + 3.0, arr(C), np.zeros(2 * C + 1)], [2])
    yield ("batch_norm_gradient_sums", "normalization", "batch_norm_gradient_sums", [arr(m, C), arr(m, C), np.zeros(2 * C)], [2])
    for has_gamma in (True, False):
        sums = rng.uniform(-3.0, 3.0, 2 * C)
        yield (f"batch_norm_global_backward[gamma={has_gamma}]", "normalization", "batch_norm_global_backward",
               [arr(m, C), arr(C, low=0.5, high=2.0), arr(C) if has_gamma else empty, arr(m, C), sums, 1.0 / (m + 5), zeros(C), zeros(m, C)],
               [6, 7])
