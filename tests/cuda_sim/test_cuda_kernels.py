"""Every CUDA kernel against its CPU twin (float64 and float32), under the simulator."""

import numpy as np
import pytest

from verify import agreement


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_cuda_kernel_agrees_with_its_cpu_twin(dtype):
    results, seconds = agreement.run(dtypes=(dtype,))
    failed = [r for r in results if not r.passed]
    assert not failed, agreement.table(failed)
    assert len(results) > 70


def test_gemm_at_shapes_that_are_not_tile_multiples():
    results, _ = agreement.run(shapes=(9, 5, 11), dtypes=("float32",), only="gemm")
    assert len(results) == 4
    assert all(r.passed for r in results), agreement.table(results)


def test_every_cpu_kernel_module_has_its_cuda_twins():
    from fastdnn import backend

    cpu, gpu = backend.kernels("cpu"), backend.kernels("cuda")
    for family in ("activation", "dense", "loss", "optim", "data"):
        cpu_module, gpu_module = getattr(cpu, family), getattr(gpu, family)
        public = [name for name, value in vars(cpu_module).items() if callable(value) and not name.startswith("_") and getattr(value, "__module__", "") == cpu_module.__name__]
        public = [name for name in public if not name.endswith("_scalar") and name not in ("softmax_row", "log_sum_exp")]
        missing = [name for name in public if not hasattr(gpu_module, name)]
        assert not missing, f"{family}: no CUDA twin for {missing}"


def test_launchers_skip_empty_arrays():
    from numba import cuda

    from fastdnn.kernels.cuda import activation, data, optim

    empty = cuda.to_device(np.empty((0, 3), np.float32))
    activation.activation_forward(activation.RELU, empty, np.float32(0), empty)
    optim.sgd_step(cuda.to_device(np.empty(0, np.float32)), cuda.to_device(np.empty(0, np.float32)), np.float32(0.1))
    assert data.all_finite(cuda.to_device(np.empty(0, np.float32)))
