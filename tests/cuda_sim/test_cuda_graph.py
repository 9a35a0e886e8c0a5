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
