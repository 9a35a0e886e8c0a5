"""Graph models on the (simulated) device: merge kernels against their CPU twins, graph models
(fan-out, shared layers, several inputs and outputs) trained like on the CPU, and their loss
gradients against finite differences."""

import numpy as np
import pytest

import fastdnn as fd
from tests.cuda_sim.twins import assert_same
from fastdnn.verify import agreement, agreement_merge
from fastdnn.verify.gradcheck import check_random
from fastdnn.verify.graph_cases import graph_model_cases

L = fd.layers


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_merge_kernels_agree_with_their_cpu_twins(dtype):
    from numba import cuda

    from fastdnn import backend

    cpu, gpu = backend.kernels("cpu").merge, backend.kernels("cuda").merge
    rng = np.random.default_rng(0)
    results = [
        agreement._compare(name, dtype, getattr(cpu, function), getattr(gpu, function), args, outputs, cuda)
        for name, _, function, args, outputs in agreement_merge.cases(rng, dtype, 3, 4, 5)
    ]
    failed = [(r.kernel, r.error or r.max_abs_error) for r in results if not r.passed]
    assert not failed
    assert len(results) >= 18


def _two_by_two():
    a, b = fd.Input((4,), name="a"), fd.Input((3,), name="b")
    shared = L.Dense(5, activation="tanh", name="shared")
    joined = L.Concatenate(name="join")([L.Dense(5, name="pa")(a), L.Dense(5, name="pb")(b)])
    left, right = shared(joined), shared(L.Dense(10, name="turn")(joined))
    product = L.Multiply(name="product")([left, L.Add(name="sum")([left, right])])
    classes = L.Dense(3, activation="softmax", name="classes")(product)
    value = L.Dense(1, name="value")(L.Maximum(name="most")([left, right]))
    near = L.Dot(axes=1, normalize=True, name="cosine")([left, right])
    return fd.Model([a, b], [classes, L.Subtract(name="gap")([value, near])])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0 in the infinite column itself
def test_merge_kernels_take_their_zeros_from_the_dtype_not_from_the_data():
    """A typed zero made as ``element * 0`` is NaN when that element is inf or NaN: an output buffer
    not yet written (device memory holds whatever was there), or one infinite input, turned whole
    results into NaN (a graph model's Dot diverged at its first batch in CI)."""
    from numba import cuda

    from fastdnn.kernels.cpu import merge as cpu
    from fastdnn.kernels.cuda import merge as gpu

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 4, 2))
    out = cuda.to_device(np.full((2, 3, 2), np.nan))  # a buffer full of NaN, as garbage may be
    gpu.batched_matmul(cuda.to_device(a), cuda.to_device(b), out, False, False)
    np.testing.assert_allclose(out.copy_to_host(), a @ b, rtol=1e-12)

    g = np.array([np.inf, 2.0, -np.inf, np.nan])
    winner = np.array([1, 0, 1, 1], dtype=np.int32)
    dX = cuda.to_device(np.full(4, 7.0))
    gpu.routed(cuda.to_device(g), cuda.to_device(winner), 0, dX)
    expected = np.full(4, 7.0)
    cpu.routed(g, winner, 0, expected)
    np.testing.assert_array_equal(dX.copy_to_host(), expected)
    np.testing.assert_array_equal(expected, [0.0, 2.0, 0.0, 0.0])

    x = rng.normal(size=(2, 3, 2))
    x[0, 0, 0] = np.inf  # one infinite element: only its own column's norm is affected
    for axis in (1, 2):
        shape = (2, 2) if axis == 1 else (2, 3)
        outs = [np.zeros_like(x), np.zeros(shape)]
        cpu.l2_normalize(x, axis, 1e-12, *outs)
        d_out, d_inv = cuda.to_device(np.zeros_like(x)), cuda.to_device(np.zeros(shape))
        gpu.l2_normalize(cuda.to_device(x), axis, 1e-12, d_out, d_inv)
        np.testing.assert_allclose(d_inv.copy_to_host(), outs[1], rtol=1e-12)
        assert np.isfinite(outs[1][1]).all() and np.isfinite(d_out.copy_to_host()[1]).all()
        g = rng.normal(size=x.shape)
        dX_cpu, dX_gpu = np.zeros_like(x), cuda.to_device(np.zeros_like(x))
        cpu.l2_normalize_backward(x, outs[1], axis, 1e-12, g, dX_cpu)
        gpu.l2_normalize_backward(cuda.to_device(x), d_inv, axis, 1e-12, cuda.to_device(g), dX_gpu)
        np.testing.assert_allclose(dX_gpu.copy_to_host()[1], dX_cpu[1], rtol=1e-12)
        assert np.isfinite(dX_cpu[1]).all()


def test_a_graph_model_trains_on_the_device_as_on_the_cpu():
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(8, 4)), rng.normal(size=(8, 3))]
    y = [rng.integers(0, 3, 8), rng.normal(size=(8, 1))]
    models = []
    for device in ("cpu", "cuda"):
        fd.set_seed(3)
        model = _two_by_two()
        model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
                      metrics=[["accuracy"], []], device=device)
        models.append(model)
    histories = []
    for model in models:
        fd.set_seed(11)
        histories.append(model.fit(x, y, batch_size=3, epochs=1, verbose=0, validation_split=0.25).history)
    assert "classes_accuracy" in histories[1] and "val_gap_loss" in histories[1]
    assert_same(models, histories, tol=1e-4)
    for a, b in zip(models[0].predict(x), models[1].predict(x)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_graph_model_gradients_on_the_device_match_finite_differences():
    rng = np.random.default_rng(2)
    chosen = [case for case, _ in graph_model_cases(rng, device="cuda") if "shared by two" in case.op or "read by three" in case.op]
    results = [r for case in chosen for r in check_random(case, rng, directions=1)]  # the simulator is slow
    assert len(chosen) == 2
    assert results and all(r.passed for r in results), [r.failure_report() for r in results if not r.passed]
