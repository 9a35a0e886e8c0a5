"""Embedding: gather and scatter-add against the NumPy reference, index checks, configs, models."""

import numpy as np
import pytest

import fastdnn as fd
from tests.conftest import DTYPES
from fastdnn.verify import reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("input_dim, output_dim, shape", [(1, 1, (1, 1)), (5, 3, (4, 7)), (50, 16, (9, 2, 3)), (3, 8, (32, 20))])
def test_embedding_matches_reference(dtype, input_dim, output_dim, shape, rng):
    layer = fd.layers.Embedding(input_dim, output_dim)
    layer.build(shape[1:], dtype)
    layer.params["embeddings"][...] = rng.normal(size=(input_dim, output_dim))
    x = rng.integers(0, input_dim, shape)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype and y.shape == (*shape, output_dim)
    np.testing.assert_array_equal(y, reference.embedding(x, layer.params["embeddings"]).astype(dtype))
    dLdY = rng.normal(size=y.shape).astype(dtype)
    assert layer.backward(dLdY) is None
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads["embeddings"], reference.embedding_backward(x, layer.params["embeddings"], dLdY), **tol)


def test_repeated_indices_accumulate():
    layer = fd.layers.Embedding(4, 2)
    layer.build((3,), np.float64)
    layer.forward(np.array([[1, 1, 3]]), training=True)
    layer.backward(np.array([[[1.0, 2.0], [10.0, 20.0], [5.0, 5.0]]]))
    np.testing.assert_array_equal(layer.grads["embeddings"], [[0, 0], [11, 22], [0, 0], [5, 5]])


@pytest.mark.parametrize(
    "x, error, match",
    [
        (np.array([[0, 1], [2, 5]]), ValueError, r"x: expected indices for Embedding 'emb' \(input_dim=5\) in \[0, 5\), received 5 at position \(1, 1\)"),
        (np.array([[0, -1, 7]]), ValueError, r"received -1 at position \(0, 1\) \(2 out of range\)"),
        (np.array([[0.0, 1.5]]), ValueError, "x: expected whole-number indices"),
        (np.array([[True, False]]), TypeError, "x: expected integer indices"),
        (np.array([1, 2]), ValueError, "x: expected indices .* with at least 2 dimension"),
        (np.array([[0.0, np.nan]]), ValueError, "x: expected finite values"),
    ],
)
def test_indices_are_checked_before_any_kernel(x, error, match):
    layer = fd.layers.Embedding(5, 3, name="emb")
    with pytest.raises(error, match=match):
        layer(x)


def test_models_check_indices_in_fit_predict_and_evaluate(rng):
    model = fd.Sequential([fd.layers.Embedding(10, 4, input_shape=(6,)), fd.layers.Flatten(), fd.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.integers(0, 10, (20, 6))
    y = rng.integers(0, 2, 20)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert model.predict(x.astype(np.float64)).shape == (20, 2)  # whole-number floats are accepted
    bad = x.copy()
    bad[3, 2] = 10
    weights = model.get_weights()
    for call in (lambda: model.fit(bad, y, verbose=0), lambda: model.predict(bad), lambda: model.evaluate(bad, y)):
        with pytest.raises(ValueError, match=r"in \[0, 10\), received 10 at position \(3, 2\)"):
            call()
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_an_embedding_after_another_layer_is_refused(rng):
    model = fd.Sequential([fd.layers.Dense(3, input_shape=(2,)), fd.layers.Embedding(5, 2)])
    with pytest.raises(TypeError, match="takes integer indices .* first layer"):
        model.predict(rng.normal(size=(2, 2)))


def test_summary_config_and_defaults():
    layer = fd.layers.Embedding(1000, 64)
    model = fd.Sequential([fd.layers.Input((12,)), layer])
    model.build()
    assert layer.output_shape == (12, 64) and layer.count_params() == 1000 * 64  # Keras: input_dim * output_dim
    lines = []
    model.summary(print_fn=lines.append)
    assert any("(None, 12, 64)" in line and "64,000" in line for line in lines)
    E = layer.params["embeddings"]
    assert np.abs(E).max() <= 0.05 and E.std() > 0.02  # Keras's "uniform": U(-0.05, 0.05)
    assert layer.name.startswith("embedding")
    clone = fd.layers.get(fd.layers.serialize(fd.layers.Embedding(7, 3, embeddings_initializer="glorot_uniform", name="e")))
    assert clone.get_config() == fd.layers.Embedding(7, 3, embeddings_initializer="glorot_uniform", name="e").get_config()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(input_dim=0, output_dim=3), ValueError, "input_dim: expected a positive integer"),
        (dict(input_dim=3, output_dim=2.0), TypeError, "output_dim: expected a positive integer"),
        (dict(input_dim=3, output_dim=2, embeddings_initializer="nope"), ValueError, "unknown initializer 'nope'"),
    ],
)
def test_arguments_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        fd.layers.Embedding(**kwargs)
