"""A user's own layer (examples/custom_layer.py: its own @njit kernel) in both model kinds, checked
by fastdnn.verify.check_layer; check_model on graph models."""

import importlib.util
import os

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import verify

_PATH = os.path.join(os.path.dirname(__file__), "..", "examples", "custom_layer.py")
_spec = importlib.util.spec_from_file_location("custom_layer", _PATH)
custom = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(custom)


def test_check_layer_passes_a_correct_user_layer_and_reports_like_gradcheck():
    result = verify.check_layer(custom.ScaledTanh(), (4,))
    assert result.passed
    text = str(result)
    assert "layer:ScaledTanh (3, 4)->(3, 4)" in text and "x " in text and " a " in text and "all passed" in text


def test_check_layer_catches_a_wrong_backward():
    class Wrong(custom.ScaledTanh):
        def backward(self, dLdY):
            dx = super().backward(dLdY)
            self.grads["a"] *= 2.0  # a planted factor
            return dx

    result = verify.check_layer(Wrong(), (3,))
    assert not result.passed
    failed = [r.argument for r in result.results if not r.passed]
    assert failed == ["a"] and "FAILED" in str(result)


def test_check_layer_copies_the_weights_of_a_built_layer_and_takes_merge_layers():
    layer = custom.ScaledTanh()
    layer.build((3,), np.float32)
    layer.params["a"][...] = [0.5, -2.0, 3.0]
    assert verify.check_layer(layer, (3,)).passed
    assert verify.check_layer(fd.layers.Dot(axes=1, normalize=True), [(4,), (4,)]).passed
    with pytest.raises(TypeError, match="layer: expected a fastdnn.layers.Layer"):
        verify.check_layer("dense", (3,))


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_a_user_layer_trains_in_both_model_kinds(rng, kind):
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    fd.set_seed(0)
    if kind == "sequential":
        model = fd.Sequential([fd.Input((4,)), fd.layers.Dense(6), custom.ScaledTanh(), fd.layers.Dense(2, activation="softmax")])
    else:
        inputs = fd.Input((4,))
        shared = custom.ScaledTanh()
        hidden = fd.layers.Dense(4)(inputs)
        merged = fd.layers.Concatenate()([shared(inputs), shared(hidden)])  # called twice: shared weights
        model = fd.Model(inputs, fd.layers.Dense(2, activation="softmax")(merged))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    first = model.evaluate(x, y)[0]
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert model.evaluate(x, y)[0] < first
    result = verify.check_model(model, x, y)
    assert result.passed, str(result)


def test_check_model_on_a_two_output_graph(rng):
    inputs = fd.Input((3,))
    h = fd.layers.Dense(4, activation="tanh")(inputs)
    model = fd.Model(inputs, {"p": fd.layers.Dense(2, activation="softmax")(h), "v": fd.layers.Dense(1)(h)})
    model.compile(optimizer="sgd", loss={"p": "categorical_crossentropy", "v": "mse"}, loss_weights={"p": 2.0, "v": 1.0})
    x, y = verify.models.random_batch(model)
    assert verify.check_model(model, x, y).passed
