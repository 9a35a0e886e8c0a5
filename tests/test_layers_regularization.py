"""Dropout: inverted dropout with a reproducible counter-based mask, identity in inference, configs."""

import numpy as np
import pytest

import fastdnn as fd
from tests.conftest import DTYPES
from fastdnn.verify import reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (4, 5, 6)])
def test_dropout_matches_reference(dtype, rate, shape, rng):
    layer = fd.layers.Dropout(rate, seed=11)
    layer.build(shape[1:], dtype)
    x = rng.normal(size=shape).astype(dtype)
    layer.forward(x, training=True)  # step 0; the reference replays step 1
    y = layer.forward(x, training=True)
    uniform = reference.counter_uniform(11, 1, 0, x.size).reshape(shape)
    y_ref, mask = reference.dropout(x, uniform, rate)
    tol = dict(rtol=1e-6) if dtype == np.float32 else dict(rtol=1e-15)
    np.testing.assert_allclose(y, y_ref, **tol)
    dLdY = rng.normal(size=shape).astype(dtype)
    np.testing.assert_allclose(layer.backward(dLdY), dLdY * mask, **tol)


def test_inference_is_the_identity_and_the_mean_is_kept(rng):
    layer = fd.layers.Dropout(0.3)
    layer.build((1000,), np.float64)
    x = np.ones((50, 1000))
    assert layer.forward(x) is x
    y = layer.forward(x, training=True)
    assert abs((y == 0).mean() - 0.3) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.7)
    assert abs(y.mean() - 1.0) < 0.02
    kept = y.copy()
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), kept)  # dL/dx = dL/dy * mask / (1 - rate)
    zero = fd.layers.Dropout(0.0)
    zero.build((3,), np.float64)
    first_columns = x[:, :3]
    assert zero.forward(first_columns, training=True) is first_columns


def test_masks_are_reproducible_under_set_seed(rng):
    def masks():
        layer = fd.layers.Dropout(0.5)
        layer.build((20,), np.float32)
        x = np.ones((4, 20), np.float32)
        return [layer.forward(x, training=True).copy() for _ in range(3)]

    fd.set_seed(5)
    first = masks()
    fd.set_seed(5)
    second = masks()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])  # a new mask per batch


def test_seeded_training_runs_are_identical(rng):
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = rng.integers(0, 3, 64)

    def train():
        fd.set_seed(1)
        model = fd.Sequential([fd.layers.Dense(16, activation="relu", input_shape=(8,)), fd.layers.Dropout(0.4), fd.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=16, epochs=3, verbose=0)
        return model.get_weights()

    for a, b in zip(train(), train()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(rate=1.0), ValueError, r"rate: expected a number in \[0.0, 1.0\)"),
        (dict(rate=-0.1), ValueError, "rate: expected a number in"),
        (dict(rate="half"), TypeError, "rate: expected a real number"),
        (dict(rate=0.5, seed=-1), ValueError, "seed: expected None or a non-negative integer"),
        (dict(rate=0.5, seed=1.5), ValueError, "seed: expected None or a non-negative integer"),
        (dict(rate=0.5, seed=2**64), ValueError, "seed: expected None or a non-negative integer below 2\\^64"),
    ],
)
def test_arguments_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        fd.layers.Dropout(**kwargs)


def test_config_round_trip_and_summary():
    layer = fd.layers.Dropout(0.25, seed=3, name="drop")
    clone = fd.layers.get(fd.layers.serialize(layer))
    assert clone.get_config() == layer.get_config() == {"name": "drop", "trainable": True, "rate": 0.25, "seed": 3}
    model = fd.Sequential([fd.layers.Input((4, 5)), fd.layers.Dropout(0.5)])
    model.build()
    assert model.layers[0].output_shape == (4, 5) and model.count_params() == 0


def test_a_shard_of_the_batch_draws_the_rows_one_process_draws_for_them(rng):
    """Data parallel: the mask of global row r depends on (key, step, r) alone, not on who computes it."""
    x = rng.normal(size=(7, 3, 4)).astype(np.float32)
    whole = fd.layers.Dropout(0.5, seed=3)
    whole.build((3, 4), np.float32)
    expected = [whole.forward(x, training=True).copy() for _ in range(2)]
    for lo, hi in [(0, 4), (4, 7), (6, 6)]:  # shards as two ranks split 7 rows; an empty one still advances
        part = fd.layers.Dropout(0.5, seed=3)
        part.build((3, 4), np.float32)
        part.shard.first_row = lo
        for step in range(2):
            np.testing.assert_array_equal(part.forward(x[lo:hi], training=True), expected[step][lo:hi])
        assert part.random_stream.get_state() == {"key": 3, "step": 2}


def test_random_stream_state_round_trips_and_is_validated():
    stream = fd.random.CounterStream(None)
    fd.set_seed(4)
    first = stream.next_word()
    state = stream.get_state()
    assert state["step"] == 1 and 0 <= state["key"] < 2**63
    second = stream.next_word()
    replay = fd.random.CounterStream()
    replay.set_state(state)
    assert replay.next_word() == second != first
    for bad in ({"key": -1, "step": 0}, {"key": 1, "step": -2}, {"key": True, "step": 0}, [1, 2]):
        with pytest.raises(ValueError, match="state: expected"):
            replay.set_state(bad)


def test_a_saved_model_resumes_the_dropout_masks(tmp_path, rng):
    x = rng.normal(size=(16, 5)).astype(np.float32)
    y = rng.integers(0, 2, 16)
    fd.set_seed(2)
    model = fd.Sequential([fd.layers.Dense(6, input_shape=(5,)), fd.layers.Dropout(0.5), fd.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "m.fdnn")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    resumed = fd.load_model(tmp_path / "m.fdnn")
    assert resumed.layers[1].random_stream.get_state() == {"key": model.layers[1].random_stream.key, "step": 4}
    resumed.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
