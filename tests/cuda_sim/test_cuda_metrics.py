"""Metrics counted on the (simulated) device, and what an epoch moves between host and device."""

import numpy as np
import pytest

import fastdnn as fd
from tests.cuda_sim.twins import assert_same, fit_both, pair

L = fd.layers


def _data(n=24, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, n)


@pytest.mark.parametrize(
    "loss, activation, metrics",
    [
        ("sparse_categorical_crossentropy", "softmax", ["accuracy", "sparse_categorical_accuracy", "precision", "recall"]),
        ("categorical_crossentropy", "softmax", ["accuracy", "categorical_accuracy", "mse", "mae", "precision"]),
        ("binary_crossentropy", "sigmoid", ["accuracy", "binary_accuracy", "recall"]),
    ],
)
def test_device_metrics_equal_the_cpu_metrics(loss, activation, metrics):
    x, labels = _data()
    y = {"sparse_categorical_crossentropy": labels, "categorical_crossentropy": np.eye(3)[labels],
         "binary_crossentropy": (labels[:, None] == np.arange(3)).astype(np.float32)}[loss]
    models = pair(lambda: [L.Dense(6, activation="tanh", input_shape=(5,)), L.Dense(3, activation=activation)],
                  optimizer="adam", loss=loss, metrics=metrics)
    histories = fit_both(models, x, y, batch_size=8, epochs=1, validation_split=0.25)
    assert set(histories[1]) == set(histories[0])
    assert_same(models, histories)
    for model in models:
        assert all(0.0 <= value <= 1.0 for key, values in histories[1].items() if "loss" not in key and "error" not in key for value in values)
    cpu, gpu = (model.evaluate(x, y, batch_size=10, return_dict=True) for model in models)
    np.testing.assert_allclose([gpu[k] for k in cpu], [cpu[k] for k in cpu], rtol=2e-5, atol=2e-5)


def test_a_metric_that_overrides_update_runs_on_the_host():
    class HitsOfClassZero(fd.metrics.SparseCategoricalAccuracy):
        def update(self, y_pred, targets):
            self.hits += int(np.sum((np.argmax(y_pred, axis=1) == 0) & (targets == 0)))
            self.count += y_pred.shape[0]

    x, y = _data()
    models = pair(lambda: [L.Dense(3, activation="softmax", input_shape=(5,))], optimizer="sgd",
                  loss="sparse_categorical_crossentropy", metrics=[HitsOfClassZero(name="zeros")])
    histories = fit_both(models, x, y, batch_size=8, epochs=1)
    assert_same(models, histories)


class _Traffic:
    """Bytes copied host->device and device->host through the simulator's arrays."""

    def __init__(self, monkeypatch):
        from numba import cuda
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        self.h2d = self.d2h = 0
        to_device, copy_to_device, copy_to_host = cuda.to_device, FakeCUDAArray.copy_to_device, FakeCUDAArray.copy_to_host

        def counted_to_device(ary, *args, **kwargs):
            self.h2d += np.asarray(ary).nbytes
            return to_device(ary, *args, **kwargs)

        def counted_copy_to_device(array, ary, *args, **kwargs):
            self.h2d += np.asarray(ary).nbytes
            return copy_to_device(array, ary, *args, **kwargs)

        def counted_copy_to_host(array, *args, **kwargs):
            self.d2h += array._ary.nbytes
            return copy_to_host(array, *args, **kwargs)

        monkeypatch.setattr(cuda, "to_device", counted_to_device)
        monkeypatch.setattr(FakeCUDAArray, "copy_to_device", counted_copy_to_device)
        monkeypatch.setattr(FakeCUDAArray, "copy_to_host", counted_copy_to_host)


def test_an_epoch_moves_only_the_order_and_one_loss_per_batch(monkeypatch):
    # the same epoch in 6 and in 3 batches: every byte that depends on the batch count is the loss
    # (one float64 per batch); predictions and row losses stay on the device
    x, y = _data()
    traffic = {}
    for batch_size in (4, 8):
        fd.set_seed(0)
        model = fd.Sequential([L.Dense(3, activation="softmax", input_shape=(5,))])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy", "precision"], device="cuda")
        counter = _Traffic(monkeypatch)
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        traffic[batch_size] = (counter.h2d, counter.d2h)
        monkeypatch.undo()
    (h2d_6, d2h_6), (h2d_3, d2h_3) = traffic[4], traffic[8]
    assert h2d_6 == h2d_3
    assert d2h_6 - d2h_3 == 3 * 8


@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy_from_logits", "mean_squared_error"])
def test_weighted_loss_rows_equal_the_cpu_twin(name):
    from numba import cuda

    from fastdnn.kernels.cpu import loss as cpu
    from fastdnn.kernels.cuda import loss as gpu

    rng = np.random.default_rng(5)
    p = rng.normal(size=(7, 4))
    t = rng.integers(0, 4, 7) if name.startswith("sparse") else rng.normal(size=(7, 4))
    weights = rng.uniform(0.0, 3.0, 7)
    grad_cpu, grad_gpu = np.zeros_like(p), cuda.to_device(np.zeros_like(p))
    expected = cpu.weighted_rows(getattr(cpu, name), p, t, grad_cpu, weights, True)
    received = gpu.weighted_rows(getattr(gpu, name), cuda.to_device(p), cuda.to_device(t), grad_gpu, cuda.to_device(weights), True)
    np.testing.assert_allclose(received, expected, rtol=1e-12)
    np.testing.assert_allclose(grad_gpu.copy_to_host(), grad_cpu, rtol=1e-12, atol=1e-15)
    assert not np.allclose(grad_cpu, 0.0)
