"""Convolution and pooling on the (simulated) device: kernels against their CPU twins, whole models
trained as on the CPU, and finite differences through the device's conv and pooling backward passes."""

import numpy as np
import pytest

import fastdnn as fd
from tests.cuda_sim.ptx import compile_script
from tests.cuda_sim.twins import assert_same
from tests.cuda_sim.twins import fit_both as _fit_both
from tests.cuda_sim.twins import pair as _pair
from fastdnn.verify import agreement


@pytest.fixture(autouse=True)
def fewer_simulated_threads(small_blocks, monkeypatch):
    """Fewer simulated threads (each a Python thread): grid-stride loops over at most 2 blocks, and
    GEMM blocks of 4 x 4 threads with 4 x 4 outputs each (the conftest's tiles and blocks otherwise).
    """
    from fastdnn import config
    from fastdnn.kernels.cuda import _launch

    monkeypatch.setattr(_launch, "MAX_BLOCKS", 2)
    monkeypatch.setattr(config, "CUDA_GEMM_REG", 4)


def _agreement(dtype):
    results = []
    for family in ("im2col", "col2im", "conv_", "pool_", "global_"):
        # (not synchronized batch norm's batch_norm_global_* kernels, which "global_" also matches)
        results += [r for r in agreement.run(dtypes=(dtype,), only=family)[0] if not r.kernel.startswith("batch_norm")]
    return results


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_conv_and_pool_kernels_agree_with_their_cpu_twins(dtype):
    results = _agreement(dtype)
    failed = [r for r in results if not r.passed]
    assert not failed, agreement.table(failed)
    names = {r.kernel.split("[")[0] for r in results}
    assert names == {
        "im2col", "col2im", "conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward",
        "avg_pool_forward", "avg_pool_backward", "global_max_forward", "global_max_backward",
        "global_avg_forward", "global_avg_backward",
    }
    assert len(results) == 69


def test_max_pooling_gradient_goes_to_the_first_maximum_and_nan_drops_it():
    from numba import cuda

    from fastdnn.kernels.cuda import pool

    # one 1x4 window per row: ties at (0, 1) and (0, 3); a NaN maximum in the second sample
    x = np.array([[[[1.0], [3.0], [2.0], [3.0]]], [[[1.0], [np.nan], [2.0], [np.nan]]]])
    y = cuda.to_device(np.zeros((2, 1, 1, 1)))
    pool.max_pool_forward(cuda.to_device(x), 1, 4, 1, 4, 0, 0, y)
    assert y.copy_to_host()[0, 0, 0, 0] == 3.0 and np.isnan(y.copy_to_host()[1, 0, 0, 0])
    dX = cuda.to_device(np.full(x.shape, 7.0))
    pool.max_pool_backward(cuda.to_device(x), y, cuda.to_device(np.full((2, 1, 1, 1), 5.0)), 1, 4, 1, 4, 0, 0, dX)
    np.testing.assert_array_equal(dX.copy_to_host().ravel(), [0, 5, 0, 0, 0, 0, 0, 0])

    x3 = x.reshape(2, 4, 1)
    y2 = cuda.to_device(np.zeros((2, 1)))
    pool.global_max_forward(cuda.to_device(x3), y2)
    pending = cuda.to_device(np.zeros(1))
    dX3 = cuda.to_device(np.full(x3.shape, 7.0))
    pool.global_max_backward(cuda.to_device(x3), y2, cuda.to_device(np.array([[2.0], [4.0]])), pending, dX3)
    np.testing.assert_array_equal(dX3.copy_to_host().ravel(), [0, 2, 0, 0, 0, 0, 0, 0])
    assert pending.copy_to_host()[0] == 4.0  # the NaN sample's gradient was never routed, as on the CPU


def _assert_same(models, histories, x, y, tol=2e-5):
    """`twins.assert_same`, and equal predict and evaluate."""
    cpu, gpu = models
    assert_same(models, histories, tol)
    prediction = gpu.predict(x)
    assert isinstance(prediction, np.ndarray) and prediction.shape == (len(x), *cpu.output_shape)
    np.testing.assert_allclose(prediction, cpu.predict(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gpu.evaluate(x, y), cpu.evaluate(x, y), rtol=1e-5, atol=1e-6)


def _images(n, shape, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def test_lenet_like_model_trains_on_the_device_like_on_the_cpu():
    x = _images(8, (6, 6, 1))
    y = np.random.default_rng(1).integers(0, 3, size=8)

    def layers():
        return [
            fd.layers.Conv2D(3, 3, activation="relu", input_shape=(6, 6, 1)),
            fd.layers.MaxPooling2D(2),
            fd.layers.Conv2D(5, 2, padding="same", activation="tanh"),
            fd.layers.GlobalAveragePooling2D(),
            fd.layers.Dense(3, activation="softmax"),
        ]

    models = _pair(layers, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    histories = _fit_both(models, x, y, batch_size=6, epochs=2, validation_split=0.25)
    assert set(histories[1]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    _assert_same(models, histories, x, y)


def test_conv1d_with_average_and_global_max_pooling_trains_like_on_the_cpu():
    x = _images(10, (7, 2))
    y = np.random.default_rng(1).integers(0, 2, size=(10, 2)).astype(np.float32)

    def layers():
        return [
            fd.layers.Conv1D(3, 3, padding="causal", dilation_rate=2, activation="elu", input_shape=(7, 2)),
            fd.layers.AveragePooling1D(2, padding="same"),
            fd.layers.Conv1D(3, 2, strides=2, use_bias=False),
            fd.layers.GlobalMaxPooling1D(),
            fd.layers.Dense(2, activation="sigmoid"),
        ]

    models = _pair(layers, optimizer="sgd", loss="binary_crossentropy")
    _assert_same(models, _fit_both(models, x, y, batch_size=10, epochs=2), x, y)


def test_other_pooling_layers_and_a_fused_conv_output_train_like_on_the_cpu():
    # AveragePooling2D (same, overlapping), MaxPooling1D (same, overlapping), GlobalMaxPooling2D
    # (keepdims) and a Conv1D softmax output fused with its loss
    x = _images(8, (5, 5, 2))
    y = np.random.default_rng(1).integers(0, 3, size=(8, 1))

    def layers():
        return [
            fd.layers.Conv2D(3, 2, strides=2, padding="same", input_shape=(5, 5, 2)),
            fd.layers.AveragePooling2D(2, strides=1, padding="same"),
            fd.layers.Reshape((9, 3)),
            fd.layers.Conv1D(3, 2, activation="relu"),
            fd.layers.MaxPooling1D(3, strides=2, padding="same"),
            fd.layers.Reshape((2, 2, 3)),
            fd.layers.GlobalMaxPooling2D(keepdims=True),
            fd.layers.Reshape((1, 3)),
            fd.layers.Conv1D(3, 1, activation="softmax"),
        ]

    models = _pair(layers, optimizer="adam", loss="sparse_categorical_crossentropy")
    assert models[1]._fused
    _assert_same(models, _fit_both(models, x, y, batch_size=8, epochs=2), x, y)


def test_finite_differences_through_conv_and_pooling_on_the_device():
    from fastdnn.verify.cases import model_case
    from fastdnn.verify.gradcheck import GradientCase, check_random

    fd.config.set_floatx("float64")
    try:
        fd.set_seed(5)
        model = fd.Sequential([
            fd.layers.Conv2D(2, 2, padding="same", activation="tanh", input_shape=(4, 4, 1)),
            fd.layers.MaxPooling2D(2, strides=1),
            fd.layers.Reshape((9, 2)),
            fd.layers.Conv1D(3, 2, strides=2, activation="tanh"),
            fd.layers.GlobalAveragePooling1D(keepdims=True),
            fd.layers.Conv1D(3, 1, activation="softmax"),  # fused with the crossentropy
        ])
        model.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss="categorical_crossentropy", device="cuda")
    finally:
        fd.config.set_floatx("float32")
    assert model._fused
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 4, 1))
    y = np.eye(3)[rng.integers(0, 3, 2)][:, None, :]
    per_array = model_case("model:conv+pool on the device", model, x, y)
    # Random directions in the space of ALL parameters at once (the simulator makes each pass slow):
    # the flat store holds every parameter array, back to back in the order of the gradient dict.
    flat = model._store.params
    assert all(np.shares_memory(a, flat) for a in per_array.arguments.values())
    case = GradientCase(
        op=per_array.op,
        arguments={"all parameters": flat},
        forward=per_array.forward,
        backward=lambda v: {"all parameters": np.concatenate([g.ravel() for g in per_array.backward(v).values()])},
    )
    results = check_random(case, rng, directions=2)
    assert len(results) == 1 and results[0].passed, results[0].failure_report()


_PTX_SCRIPT = """
from fastdnn.kernels.cuda import conv, pool

dt = "float32"
a4, a3, a2, a1 = f"{dt}[:, :, :, ::1]", f"{dt}[:, :, ::1]", f"{dt}[:, ::1]", f"{dt}[::1]"
g10, g6 = ", ".join(["int64"] * 10), ", ".join(["int64"] * 6)
for kernel, signature in (
    (conv._im2col, f"void({a4}, {g10}, {a2})"),
    (conv._col2im_kernel(dt), f"void({a2}, {g10}, {a4})"),
    (pool._max_pool_forward, f"void({a4}, {g6}, {a4})"),
    (pool._max_pool_backward_kernel(dt), f"void({a4}, {a4}, {a4}, {g6}, {a4})"),
    (pool._avg_pool_forward_kernel(dt), f"void({a4}, {g6}, {a2}, {a4})"),
    (pool._avg_pool_backward_kernel(dt), f"void({a4}, {g6}, {a2}, {a4})"),
    (pool._global_max_forward, f"void({a3}, {a2})"),
    (pool._global_max_backward_kernel(dt), f"void({a3}, {a2}, {a2}, {a1}, {a3})"),
    (pool._global_avg_forward_kernel(dt), f"void({a3}, {dt}, {a2})"),
    (pool._global_avg_backward, f"void({a2}, {dt}, {a3})"),
):
    ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(8, 0))
    print(kernel.py_func.__name__, "f64" if ".f64" in ptx else "f32 only")
"""


def test_the_kernels_compile_for_a_real_gpu_in_float32_arithmetic():
    # The simulator runs the Python bodies untyped; this types and compiles what a GPU runs (PTX,
    # without a GPU) in a process without the simulator, and finds no float64 arithmetic in float32.
    stdout = compile_script(_PTX_SCRIPT)
    lines = stdout.split("\n")[:-1]
    assert len(lines) == 10 and all(line.endswith(" f32 only") for line in lines), stdout
