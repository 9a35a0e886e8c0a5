"""Agreement cases of the batch-normalization kernels (``fastdnn.kernels.cuda.normalization`` against the CPU twins).

Every branch: gamma and beta present or empty (``scale=False``, ``center=False``), training with the
batch statistics, inference and the frozen forward with the moving ones, the backward pass with
batch or constant statistics and with or without ``dL/dx``. The work arrays are compared too. And
the four kernels of batch normalization synchronized over data-parallel processes (float64 sums of a
shard; the global passes from sums that stand for several shards).
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
    # synchronized over processes: this shard's sums, then the global passes from the sums of it and
    # another shard of 3 rows (what the allreduce would give)
    for has_gamma, has_beta in ((True, True), (False, False)):
        tag = f"gamma={has_gamma},beta={has_beta}"
        gamma = arr(C) if has_gamma else empty
        beta = arr(C) if has_beta else empty
        x, more = arr(m, C) + 3.0, arr(3, C) + 3.0
        shift = arr(C)
        deviations = np.concatenate([x, more]).astype(np.float64) - shift.astype(np.float64)
        sums = np.concatenate([deviations.sum(axis=0), (deviations * deviations).sum(axis=0), [m + 3.0]])
        yield (f"batch_norm_shifted_sums[{tag}]", "normalization", "batch_norm_shifted_sums", [x, shift, np.zeros(2 * C + 1)], [2])
        yield (f"batch_norm_global_forward[{tag}]", "normalization", "batch_norm_global_forward",
               [x, sums, gamma, beta, epsilon, momentum, shift.copy(), arr(C, low=0.1, high=2.0), zeros(C), zeros(C), zeros(m, C), zeros(m, C)],
               [6, 7, 8, 9, 10, 11])
        x_hat, g = arr(m, C), arr(m, C)
        yield (f"batch_norm_gradient_sums[{tag}]", "normalization", "batch_norm_gradient_sums", [x_hat, g, np.zeros(2 * C)], [2])
        gradient_sums = rng.uniform(-3.0, 3.0, size=2 * C)
        yield (f"batch_norm_global_backward[{tag}]", "normalization", "batch_norm_global_backward",
               [x_hat, arr(C, low=0.5, high=2.0), gamma, g, gradient_sums, 1.0 / (m + 3), zeros(C), zeros(m, C)], [6, 7])
