"""Every CUDA kernel against its CPU twin (float64 and float32), under the simulator."""

import numpy as np
import pytest

from fastdnn.verify import agreement

# the simulator runs the dropout hash's uint64 arithmetic as NumPy scalars, which warn when they wrap
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_cuda_kernel_agrees_with_its_cpu_twin(dtype):
    results, seconds = agreement.run(dtypes=(dtype,))
    failed = [r for r in results if not r.passed]
    assert not failed, agreement.table(failed)
    assert len(results) > 70


@pytest.mark.parametrize("reg", [1, 2, 3])
def test_gemm_at_shapes_that_are_not_tile_multiples(monkeypatch, reg):
    from fastdnn import config

    monkeypatch.setattr(config, "CUDA_GEMM_REG", reg)  # 1: the plain tiled kernel; else register blocks
    results, _ = agreement.run(shapes=(9, 5, 11), dtypes=("float32",), only="gemm")
    assert len(results) == 4
    assert all(r.passed for r in results), agreement.table(results)


def test_every_cpu_kernel_module_has_its_cuda_twins():
    from fastdnn import backend

    cpu, gpu = backend.kernels("cpu"), backend.kernels("cuda")
    for family in backend.FAMILIES:
        cpu_module, gpu_module = getattr(cpu, family), getattr(gpu, family)
        public = [name for name, value in vars(cpu_module).items() if callable(value) and not name.startswith("_") and getattr(value, "__module__", "") == cpu_module.__name__]
        public = [name for name in public if not name.endswith("_scalar") and name not in ("softmax_row", "log_sum_exp")]
        cpu_only = getattr(cpu_module, "CPU_ONLY", frozenset())  # CPU layouts of kernels that do have twins (said why there)
        assert all(callable(getattr(cpu_module, name, None)) for name in cpu_only), f"{family}: stale CPU_ONLY {sorted(cpu_only)}"
        public = [name for name in public if name not in cpu_only]
        missing = [name for name in public if not hasattr(gpu_module, name)]
        assert not missing, f"{family}: no CUDA twin for {missing}"


def test_launchers_skip_empty_arrays():
    from numba import cuda

    from fastdnn.kernels.cuda import activation, data, optim

    empty = cuda.to_device(np.empty((0, 3), np.float32))
    activation.activation_forward(activation.RELU, empty, np.float32(0), empty)
    optim.sgd_step(cuda.to_device(np.empty(0, np.float32)), cuda.to_device(np.empty(0, np.float32)), np.float32(0.1))
    assert data.all_finite(cuda.to_device(np.empty(0, np.float32)))


def test_model_gradients_through_the_cuda_kernels_match_the_cpu():
    # the CPU side of every model case is checked by finite differences in tests/test_verify.py;
    # fastdnn-gradcheck --device cuda runs the finite differences on the device itself (slow simulated)
    from fastdnn.verify.cases import model_cases

    import fastdnn as fd

    fd.set_seed(0)  # the same initial weights
    cpu_cases = list(model_cases(np.random.default_rng(0)))
    fd.set_seed(0)
    gpu_cases = list(model_cases(np.random.default_rng(0), device="cuda"))
    assert len(cpu_cases) == len(gpu_cases) == 6
    for (cpu, _), (gpu, _) in zip(cpu_cases, gpu_cases):
        np.testing.assert_allclose(gpu.forward(), cpu.forward(), rtol=1e-12, err_msg=cpu.op)
        expected, received = cpu.backward(1.0), gpu.backward(1.0)
        assert expected.keys() == received.keys()
        for name in expected:
            np.testing.assert_allclose(received[name], expected[name], rtol=1e-9, atol=1e-12, err_msg=f"{cpu.op} {name}")


def test_every_layer_family_gives_the_cpu_gradients_on_the_device():
    # the CPU side is checked by finite differences in tests/test_verify.py (gradient_cases)
    from fastdnn.verify.cases import layer_model_cases

    import fastdnn as fd

    fd.set_seed(0)
    cpu_cases = list(layer_model_cases(np.random.default_rng(0)))
    fd.set_seed(0)
    gpu_cases = list(layer_model_cases(np.random.default_rng(0), device="cuda"))
    assert len(cpu_cases) == len(gpu_cases) == 4
    for (cpu, _), (gpu, _) in zip(cpu_cases, gpu_cases):
        np.testing.assert_allclose(gpu.forward(), cpu.forward(), rtol=1e-12, err_msg=cpu.op)
        expected, received = cpu.backward(1.0), gpu.backward(1.0)
        assert expected.keys() == received.keys()
        for name in expected:
            np.testing.assert_allclose(received[name], expected[name], rtol=1e-9, atol=1e-12, err_msg=f"{cpu.op} {name}")


def test_finite_differences_through_the_cuda_kernels():
    from fastdnn.verify.cases import model_cases
    from fastdnn.verify.gradcheck import check_random

    rng = np.random.default_rng(1)
    case, _ = next(iter(model_cases(rng, device="cuda")))
    results = check_random(case, rng, directions=1)  # one direction per parameter: the simulator is slow
    assert len(results) == 4 and all(r.passed for r in results), [r.failure_report() for r in results if not r.passed]
