"""The CUDA twins of synchronized batch normalization's kernels against the CPU's at edge shapes (the simulator)."""

import numpy as np
import pytest
from numba import cuda

from fastdnn.kernels.cpu import normalization as cpu
from fastdnn.kernels.cuda import normalization as gpu


# fastdnn.verify.agreement_normalization compares them at ordinary shapes (test_cuda_kernels.py); here the
# edges: an empty shard (0 rows, as a rank holds when a batch has fewer rows than ranks), one row, and
# 40 features (more than one block of features)
@pytest.mark.parametrize("m, C", [(0, 3), (1, 5), (9, 40)])
def test_shard_sums_and_global_passes_match_the_cpu(m, C):
    rng = np.random.default_rng(m * 100 + C)
    x = (rng.normal(size=(m, C)) * 3 + 5).astype(np.float32)
    g = rng.normal(size=(m, C)).astype(np.float32)
    shift = rng.normal(size=C).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2, C).astype(np.float32), rng.normal(size=C).astype(np.float32)
    epsilon, momentum = np.float32(1e-3), np.float32(0.9)

    sums = np.empty(2 * C + 1)
    cpu.batch_norm_shifted_sums(x, shift, sums)
    d_sums = cuda.to_device(np.full(2 * C + 1, np.nan))
    gpu.batch_norm_shifted_sums(cuda.to_device(x), cuda.to_device(shift), d_sums)
    np.testing.assert_allclose(d_sums.copy_to_host(), sums, rtol=1e-12, atol=1e-12)
    assert d_sums.copy_to_host()[2 * C] == m

    # another shard's sums added, as the allreduce would: the global statistics of both
    other = np.empty(2 * C + 1)
    cpu.batch_norm_shifted_sums((rng.normal(size=(4, C)) + 5).astype(np.float32), shift, other)
    total = sums + other
    outputs = {}
    for name, kernels, to in (("cpu", cpu, np.asarray), ("gpu", gpu, cuda.to_device)):
        moving_mean, moving_var = to(shift.copy()), to(np.ones(C, np.float32))
        mean, inv_std = to(np.zeros(C, np.float32)), to(np.zeros(C, np.float32))
        x_hat, y = to(np.zeros((m, C), np.float32)), to(np.zeros((m, C), np.float32))
        kernels.batch_norm_global_forward(to(x), to(total), to(gamma), to(beta), epsilon, momentum, moving_mean, moving_var, mean, inv_std, x_hat, y)
        outputs[name] = [a if name == "cpu" else a.copy_to_host() for a in (moving_mean, moving_var, mean, inv_std, x_hat, y)]
    for a, b in zip(outputs["cpu"], outputs["gpu"]):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    x_hat = outputs["cpu"][4]

    grad_sums = np.empty(2 * C)
    cpu.batch_norm_gradient_sums(x_hat, g, grad_sums)
    d_grad_sums = cuda.to_device(np.full(2 * C, np.nan))
    gpu.batch_norm_gradient_sums(cuda.to_device(x_hat), cuda.to_device(g), d_grad_sums)
    np.testing.assert_allclose(d_grad_sums.copy_to_host(), grad_sums, rtol=1e-12, atol=1e-12)

    inv_std = outputs["cpu"][3]
    grad_total = grad_sums + rng.normal(size=2 * C)
    for with_gamma in (gamma, np.zeros(0, np.float32)):
        factor, dX = np.empty(C, np.float32), np.empty((m, C), np.float32)
        cpu.batch_norm_global_backward(x_hat, inv_std, with_gamma, g, grad_total, 1.0 / (m + 4), factor, dX)
        d_factor, d_dX = cuda.to_device(np.zeros(C, np.float32)), cuda.to_device(np.zeros((m, C), np.float32))
        gpu.batch_norm_global_backward(
            cuda.to_device(x_hat), cuda.to_device(inv_std), cuda.to_device(with_gamma), cuda.to_device(g),
            cuda.to_device(grad_total), 1.0 / (m + 4), d_factor, d_dX,
        )
        np.testing.assert_array_equal(d_factor.copy_to_host(), factor)
        np.testing.assert_allclose(d_dX.copy_to_host(), dX, rtol=1e-6, atol=1e-6)
