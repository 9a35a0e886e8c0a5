"""BatchNormalization: training and inference against the NumPy reference, moving statistics, configs."""

import numpy as np
import pytest

import fastdnn as fd
from tests.conftest import DTYPES
from fastdnn.verify import reference

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-12)}


def _built(layer, shape, dtype, rng):
    layer.build(shape[1:], dtype)
    for value in layer.params.values():
        value[...] = rng.normal(size=value.shape)
    return layer


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 3), (2, 1), (16, 5), (3, 4, 6), (2, 5, 5, 3)])
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False)])
def test_training_forward_backward_and_moving_statistics(dtype, shape, center, scale, rng):
    layer = _built(fd.layers.BatchNormalization(center=center, scale=scale, momentum=0.9), shape, dtype, rng)
    x = (rng.normal(size=shape) * 3 + 1).astype(dtype)
    y = layer.forward(x, training=True)
    gamma, beta = layer.params.get("gamma"), layer.params.get("beta")
    y_ref, mu, var = reference.batch_norm(x, gamma, beta, 1e-3)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    np.testing.assert_allclose(layer.state["moving_mean"], 0.1 * mu, **TOL[dtype])
    np.testing.assert_allclose(layer.state["moving_variance"], 0.9 + 0.1 * var, **TOL[dtype])
    dLdY = rng.normal(size=shape).astype(dtype)
    dX = layer.backward(dLdY)
    dX_ref, dgamma_ref, dbeta_ref = reference.batch_norm_backward(x, gamma, dLdY, 1e-3)
    np.testing.assert_allclose(dX, dX_ref, **TOL[dtype])
    if scale:
        np.testing.assert_allclose(layer.grads["gamma"], dgamma_ref, **TOL[dtype])
    if center:
        np.testing.assert_allclose(layer.grads["beta"], dbeta_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_inference_and_frozen_layers_use_the_moving_statistics(dtype, rng):
    layer = _built(fd.layers.BatchNormalization(), (4, 3, 5), dtype, rng)
    layer.state["moving_mean"][...] = rng.normal(size=5)
    layer.state["moving_variance"][...] = rng.uniform(0.5, 2.0, 5)
    mean, var = layer.state["moving_mean"].copy(), layer.state["moving_variance"].copy()
    x = rng.normal(size=(4, 3, 5)).astype(dtype)
    expected = reference.batch_norm(x, layer.params["gamma"], layer.params["beta"], 1e-3, mean, var)[0]
    np.testing.assert_allclose(layer.forward(x, training=False), expected, **TOL[dtype])
    np.testing.assert_array_equal(layer.state["moving_mean"], mean)  # inference does not update

    layer.trainable = False  # Keras: a frozen BatchNormalization runs in inference mode
    np.testing.assert_allclose(layer.forward(x, training=True), expected, **TOL[dtype])
    np.testing.assert_array_equal(layer.state["moving_variance"], var)
    dLdY = rng.normal(size=x.shape).astype(dtype)
    dX_ref, dgamma_ref, dbeta_ref = reference.batch_norm_backward(x, layer.params["gamma"], dLdY, 1e-3, mean, var)
    np.testing.assert_allclose(layer.backward(dLdY), dX_ref, **TOL[dtype])
    np.testing.assert_allclose(layer.grads["gamma"], dgamma_ref, **TOL[dtype])


def test_moving_statistics_converge_to_the_data_statistics(rng):
    layer = fd.layers.BatchNormalization(momentum=0.9)
    layer.build((2,), np.float64)
    x = rng.normal(size=(4000, 2)) * [2.0, 0.5] + [3.0, -1.0]
    for batch in np.split(x, 100):
        layer.forward(batch, training=True)
    np.testing.assert_allclose(layer.state["moving_mean"], [3.0, -1.0], atol=0.2)
    np.testing.assert_allclose(layer.state["moving_variance"], [4.0, 0.25], rtol=0.25)


def test_state_is_non_trainable_and_counted_as_keras_does():
    layer = fd.layers.BatchNormalization()
    model = fd.Sequential([fd.layers.Input((6, 6, 8)), fd.layers.Conv2D(4, 3), layer])
    model.compile(optimizer="sgd", loss="mse")
    assert list(layer.params) == ["gamma", "beta"] and list(layer.state) == ["moving_mean", "moving_variance"]
    assert layer.count_params() == 4 * 4 and layer.count_trainable_params() == 2 * 4
    lines = []
    model.summary(print_fn=lines.append)
    assert any("(None, 4, 4, 4)" in line and line.rstrip().endswith(" 16") for line in lines)
    assert "Non-trainable params: 8" in lines
    np.testing.assert_array_equal(layer.state["moving_variance"], 1.0)
    assert layer.name.startswith("batch_normalization")


def test_training_updates_state_but_the_optimizer_does_not(rng):
    model = fd.Sequential([fd.layers.Input((3,)), fd.layers.BatchNormalization(), fd.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = rng.normal(size=(32, 3)) * 4 + 2
    model.fit(x, rng.normal(size=(32, 1)), batch_size=8, epochs=2, verbose=0)
    bn = model.layers[0]
    assert np.all(bn.state["moving_mean"] > 0.05)  # moved towards the data mean 2
    assert model._store.size == 3 + 3 + 3 + 1  # gamma, beta, W, b: the moving statistics are not stepped


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(axis=1), ValueError, "axis: only -1"),
        (dict(momentum=1.5), ValueError, r"momentum: expected a number in \[0.0, 1.0\]"),
        (dict(epsilon=0), ValueError, "epsilon: expected a number in"),
        (dict(center="yes"), TypeError, "center: expected True or False"),
        (dict(gamma_initializer="nope"), ValueError, "unknown initializer 'nope'"),
        (dict(synchronized="yes"), TypeError, "synchronized: expected None, True or False, received"),
    ],
)
def test_arguments_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        fd.layers.BatchNormalization(**kwargs)


def test_config_round_trip():
    layer = fd.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False, gamma_initializer="random_normal", name="bn")
    clone = fd.layers.get(fd.layers.serialize(layer))
    assert type(clone) is fd.layers.BatchNormalization and clone.get_config() == layer.get_config()
    assert fd.layers.BatchNormalization().momentum == 0.99 and fd.layers.BatchNormalization().epsilon == 1e-3
    for synchronized in (None, True, False):
        layer = fd.layers.BatchNormalization(synchronized=synchronized)
        assert layer.get_config()["synchronized"] is synchronized
        assert fd.layers.get(fd.layers.serialize(layer)).synchronized is synchronized


class _ThreadRanks:
    """Two "processes" as two threads of this one: `allreduce_sum` adds both threads' arrays through
    a barrier, as MPI's Allreduce would (the same order of addition on both)."""

    size = 2

    def __init__(self, rank, shared):
        self.rank, self.shared = rank, shared

    def allreduce_sum(self, values):
        parts, barrier = self.shared
        parts[self.rank] = values.copy()
        barrier.wait()
        total = parts[0] + parts[1]
        barrier.wait()
        values[...] = total
        return values


def _in_two_threads(work):
    import threading

    shared, results = ([None, None], threading.Barrier(2)), [None, None]

    def run(rank):
        results[rank] = work(rank, _ThreadRanks(rank, shared))

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("split", [3, 0])  # 0: one shard is empty (more processes than rows)
def test_synchronized_shards_normalize_with_the_global_batch_statistics(dtype, split, rng):
    """Shards of one batch in two processes: outputs, gradients and moving statistics of the whole
    batch in one process (NumPy reference), per shard."""
    x = (rng.normal(size=(7, 2, 3)) * 3 + 5).astype(dtype)  # a mean far from 0: the shifted sums
    dLdY = rng.normal(size=x.shape).astype(dtype)
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    shards = [slice(0, split), slice(split, 7)]

    def work(rank, parallel):
        layer = fd.layers.BatchNormalization(momentum=0.9)
        layer.build((2, 3), dtype)
        layer.params["gamma"][...], layer.params["beta"][...] = gamma, beta
        layer.shard = fd.distributed.Shard(parallel)
        assert layer.synchronizes
        y = layer.forward(x[shards[rank]], training=True).copy()
        dX = layer.backward(dLdY[shards[rank]]).copy()
        return y, dX, layer.grads["gamma"].copy(), layer.grads["beta"].copy(), layer.get_weights()[2:]

    results = _in_two_threads(work)
    y_ref, mu, var = reference.batch_norm(x, gamma, beta)
    dX_ref, dgamma_ref, dbeta_ref = reference.batch_norm_backward(x, gamma, dLdY)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([r[0] for r in results]), y_ref, **tol)
    np.testing.assert_allclose(np.concatenate([r[1] for r in results]), dX_ref, **tol)
    # each process keeps its shard's parameter gradients: the step's allreduce adds them
    np.testing.assert_allclose(results[0][2] + results[1][2], dgamma_ref, **tol)
    np.testing.assert_allclose(results[0][3] + results[1][3], dbeta_ref, **tol)
    for rank in range(2):  # the same moving statistics in both processes, bit for bit
        np.testing.assert_array_equal(results[rank][4][0], results[0][4][0])
        np.testing.assert_array_equal(results[rank][4][1], results[0][4][1])
    np.testing.assert_allclose(results[0][4][0], 0.1 * mu, **tol)
    np.testing.assert_allclose(results[0][4][1], 0.9 + 0.1 * var, **tol)


def test_unsynchronized_shards_use_their_own_statistics_and_expose_the_moving_ones(rng):
    x = rng.normal(size=(6, 3))

    def work(rank, parallel):
        layer = fd.layers.BatchNormalization(synchronized=False)
        layer.build((3,), np.float64)
        layer.shard = fd.distributed.Shard(parallel)
        assert not layer.synchronizes and len(layer.replicated_state) == 2
        return layer.forward(x[3 * rank : 3 * rank + 3], training=True).copy()

    results = _in_two_threads(work)
    for rank in range(2):
        np.testing.assert_allclose(results[rank], reference.batch_norm(x[3 * rank : 3 * rank + 3], None, None)[0], rtol=1e-10, atol=1e-12)
    single = fd.layers.BatchNormalization(synchronized=True)
    assert not single.synchronizes and single.replicated_state == ()  # one process: nothing to synchronize


def test_synchronized_backward_matches_finite_differences_of_the_global_loss(rng):
    """float64 central differences of ``L = sum(w * y)`` over the global batch, whose rows two
    processes (threads) normalize together, against the shards' synchronized dL/dx."""
    x = rng.normal(size=(5, 3)) * 2 + 1
    w = rng.normal(size=x.shape)
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    shards = [slice(0, 2), slice(2, 5)]

    def layers(rank, parallel):
        layer = fd.layers.BatchNormalization()
        layer.build((3,), np.float64)
        layer.params["gamma"][...], layer.params["beta"][...] = gamma, beta
        layer.shard = fd.distributed.Shard(parallel)
        return layer

    def loss(values):
        def work(rank, parallel):
            return float(np.sum(w[shards[rank]] * layers(rank, parallel).forward(values[shards[rank]], training=True)))

        return sum(_in_two_threads(work))

    def gradient(rank, parallel):
        layer = layers(rank, parallel)
        layer.forward(x[shards[rank]], training=True)
        return layer.backward(w[shards[rank]]).copy()

    analytic = np.concatenate(_in_two_threads(gradient))
    numeric = np.zeros_like(x)
    h = 1e-6
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = (loss(up) - loss(down)) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
