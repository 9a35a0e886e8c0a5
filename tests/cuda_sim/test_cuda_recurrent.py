"""SimpleRNN, LSTM and GRU on the simulated device: kernels against their CPU twins, float32 tanh and
sigmoid as the CPU's fast forms, training equal to the CPU, gradients by finite differences through
the CUDA kernels, and the float32 overloads compiled for a real GPU (PTX, where NVVM is installed)."""

import math

import numpy as np
import pytest

import fastdnn as fd
from tests.cuda_sim.ptx import compile_script
from tests.cuda_sim.twins import assert_same as _assert_same
from tests.cuda_sim.twins import fit_both as _fit_both
from tests.cuda_sim.twins import pair as _pair
from fastdnn.verify import agreement

cuda = pytest.importorskip("numba.cuda")  # a module global: the simulator swaps it inside kernels


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("function", ["simple_rnn", "lstm", "gru"])
def test_recurrent_kernels_agree_with_their_cpu_twins(function, dtype):
    results, _ = agreement.run(dtypes=(dtype,), only=f"{function}_")
    failed = [r for r in results if not r.passed]
    assert not failed, agreement.table(failed)
    assert len(results) == 6  # three variants, forward and backward
    assert {r.kernel.split("[")[0] for r in results} == {f"{function}_forward", f"{function}_backward"}


def test_float32_tanh_and_sigmoid_are_the_cpu_fast_forms_and_exact_in_float64():
    import numba

    from fastdnn.kernels.cpu import recurrent as cpu
    from fastdnn.kernels.cuda import recurrent as gpu

    @cuda.jit
    def on_device(z, t, s):
        for i in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
            t[i] = gpu.fast_tanh(z[i])
            s[i] = gpu.fast_sigmoid(z[i])

    @numba.njit
    def on_cpu(z, t, s):
        for i in range(z.shape[0]):
            t[i] = cpu.fast_tanh(z[i])
            s[i] = cpu.fast_sigmoid(z[i])

    z = np.concatenate([np.linspace(-9, 9, 37), [0.3, 1e-30, -1e-8, 20.0, -20.0, np.nan]])
    for dtype, tol in ((np.float32, 2e-7), (np.float64, 1e-15)):
        zd = z.astype(dtype)
        expected = np.empty((2, z.size), dtype)
        received = cuda.to_device(np.empty((2, z.size), dtype))
        on_cpu(zd, expected[0], expected[1])
        on_device[2, 8](cuda.to_device(zd), received[0], received[1])
        received = received.copy_to_host()
        np.testing.assert_allclose(received[:, :-1], expected[:, :-1], rtol=tol, atol=tol)
        assert np.isnan(received[:, -1]).all()
        exact_tanh = np.array([math.tanh(v) for v in zd[:-1].astype(np.float64)]).astype(dtype)
        if dtype is np.float32:  # the rational form, not tanh: the same as the CPU's, off in the last bits
            np.testing.assert_array_equal(received[0], expected[0])
            assert np.any(received[0, :-1] != exact_tanh)
        else:
            np.testing.assert_array_equal(received[0, :-1], exact_tanh)


def _sequences(n=6, steps=3, features=2, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, steps, features)).astype(np.float32), rng.integers(0, classes, size=n)


def test_lstm_model_trains_on_the_device_like_on_the_cpu():
    x, y = _sequences()

    def layers():
        return [fd.layers.LSTM(4, input_shape=(3, 2)), fd.layers.Dense(3, activation="softmax")]

    models = _pair(layers, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    histories = _fit_both(models, x, y, batch_size=4, epochs=2)  # batches of 4 and 2: a short last batch
    _assert_same(models, histories)
    cpu, gpu = models
    np.testing.assert_allclose(gpu.predict(x, batch_size=5), cpu.predict(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gpu.evaluate(x, y), cpu.evaluate(x, y), rtol=1e-5)


def test_stacked_gru_and_simple_rnn_train_on_the_device_like_on_the_cpu():
    # the GRU is first (no input gradient), the SimpleRNN after it passes dL/dx back through the kernels
    x, y = _sequences(seed=1)

    def layers():
        return [
            fd.layers.GRU(3, return_sequences=True, input_shape=(3, 2)),
            fd.layers.SimpleRNN(3, activation="relu"),
            fd.layers.Dense(3, activation="softmax"),
        ]

    models = _pair(layers, optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    assert [layer.compute_input_grad for layer in models[1].layers] == [False, True, True]
    _assert_same(models, _fit_both(models, x, y, batch_size=3, epochs=1))
    cpu, gpu = models
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=1e-5, atol=1e-6)


def test_finite_differences_through_the_recurrent_cuda_kernels():
    # One random direction in the space of ALL parameters at once (the flat store that the device
    # uploads): every evaluation is a whole simulated training step, so per-parameter directions
    # would cost minutes; a wrong gradient of any parameter shows in the directional derivative.
    from fastdnn import backend
    from fastdnn.verify.cases import model_case
    from fastdnn.verify.gradcheck import GradientCase, check_random

    rng = np.random.default_rng(2)
    fd.set_seed(5)
    fd.config.set_floatx("float64")
    try:
        model = fd.Sequential([
            fd.layers.GRU(3, return_sequences=True, input_shape=(3, 2), name="gru"),
            fd.layers.LSTM(3, recurrent_activation="tanh", name="lstm"),
            fd.layers.Dense(2, activation="softmax", name="out"),
        ])
        model.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss="sparse_categorical_crossentropy", device="cuda")
    finally:
        fd.config.set_floatx("float32")
    for layer in model.layers[:2]:  # away from zero biases, so that every term matters
        layer.params["b"][...] = rng.normal(0.0, 0.5, layer.params["b"].shape)
    per_layer = model_case("model", model, rng.normal(size=(3, 3, 2)), rng.integers(0, 2, 3))
    engine = backend.engine_for(model)

    def backward(dLdY):
        per_layer.backward(dLdY)  # leaves the whole gradient in the engine's flat device buffer
        return {"parameters": float(dLdY) * engine.grads.copy_to_host()}

    case = GradientCase(op="model:GRU|LSTM|softmax on the device", arguments={"parameters": model._store.params},
                        forward=per_layer.forward, backward=backward)
    results = check_random(case, rng, directions=1)
    assert len(results) == 1 and results[0].passed, results[0].failure_report()


_PTX_SCRIPT = """
from fastdnn.kernels.cuda import recurrent

def apply(z, out):
    i = cuda.grid(1)
    if i < z.shape[0]:
        out[i] = recurrent.fast_tanh(z[i]) + recurrent.fast_sigmoid(z[i])

for dtype in ("float32", "float64"):
    ptx, _ = cuda.compile_ptx(apply, f"void({dtype}[::1], {dtype}[::1])", cc=(8, 0))
    print(dtype, "f64" if ".f64" in ptx else "f32 only")
step = recurrent._lstm_step.py_func
a2, a1 = "float32[:, ::1]", "float32[::1]"
cuda.compile_ptx(step, f"void({a2}, {a1}, boolean, {a2}, boolean, {a2}, {a2}, {a2}, {a2}, int64, float32, int64, float32)", cc=(8, 0))
print("lstm step compiled")
"""


def test_the_fast_forms_compile_for_a_real_gpu_in_float32_arithmetic():
    # The simulator runs the Python bodies; this compiles the overloads that a GPU runs (to PTX,
    # without a GPU), in a process without the simulator.
    stdout = compile_script(_PTX_SCRIPT)
    assert stdout.split("\n")[:3] == ["float32 f32 only", "float64 f64", "lstm step compiled"], stdout
