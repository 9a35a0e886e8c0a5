import io

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import validation
from fastdnn.verify import reference
from fastdnn.verify.gradcheck import numerical_gradient, relative_error


@pytest.fixture
def float64():
    fd.config.set_floatx("float64")
    yield
    fd.config.set_floatx("float32")


def _classifier(inputs=6, hidden=8, classes=3, optimizer="adam", metrics=("accuracy",)):
    model = fd.Sequential(
        [fd.layers.Dense(hidden, activation="relu", input_shape=(inputs,)), fd.layers.Dense(classes, activation="softmax")]
    )
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model


def _blobs(rng, n=60, inputs=6, classes=3):
    y = rng.integers(0, classes, n)
    centers = rng.normal(0, 3, (classes, inputs))
    return (centers[y] + rng.normal(size=(n, inputs))).astype(np.float32), y


def test_keras_workflow(rng):
    x, y = _blobs(rng)
    model = _classifier()
    history = model.fit(x, y, batch_size=16, epochs=3, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2] and model.history is history
    loss, accuracy = model.evaluate(x, y)
    logs = model.evaluate(x, y, return_dict=True)
    assert logs == {"loss": loss, "accuracy": accuracy}
    probabilities = model.predict(x)
    assert probabilities.shape == (60, 3) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert accuracy == pytest.approx(np.mean(probabilities.argmax(1) == y))


def test_predict_matches_a_numpy_forward_pass(rng):
    x, y = _blobs(rng)
    model = _classifier()
    model.fit(x, y, epochs=2, verbose=0)
    W1, b1, W2, b2 = model.get_weights()
    _, hidden = reference.dense_forward(x, W1, b1, "relu")
    _, expected = reference.dense_forward(hidden, W2, b2, "softmax")
    for batch_size in (None, 1, 7):
        np.testing.assert_allclose(model.predict(x, batch_size=batch_size), expected, rtol=1e-4, atol=1e-6)


def test_evaluate_without_metrics_returns_the_loss(rng):
    x, y = _blobs(rng)
    model = _classifier(metrics=())
    value = model.evaluate(x, y)
    assert isinstance(value, float)
    assert value == pytest.approx(reference.loss("sparse_categorical_crossentropy", y, model.predict(x)), rel=1e-5)


CONFIGS = [
    # (hidden activation, output layers, loss, target kind): fused, unfused and logits paths.
    ("tanh", [fd.layers.Dense(3, activation="softmax")], "sparse_categorical_crossentropy", "labels"),
    ("gelu", [fd.layers.Dense(3, activation="softmax")], "categorical_crossentropy", "onehot"),
    ("sigmoid", [fd.layers.Dense(3), fd.layers.Activation("softmax")], "categorical_crossentropy", "onehot"),
    ("elu", [fd.layers.Dense(1, activation="sigmoid")], "binary_crossentropy", "binary"),
    ("silu", [fd.layers.Dense(3)], {"name": "categorical_crossentropy", "from_logits": True}, "onehot"),
    ("softplus", [fd.layers.Dense(2, activation="tanh")], "mse", "real"),
    ("leaky_relu", [fd.layers.Dense(2)], "mae", "real"),
    ("tanh", [fd.layers.Dense(3, activation="sigmoid")], "categorical_crossentropy", "onehot"),
]


def _targets(kind, rng, n, width):
    if kind == "labels":
        return rng.integers(0, width, n)
    if kind == "onehot":
        return np.eye(width)[rng.integers(0, width, n)]
    if kind == "binary":
        return rng.integers(0, 2, (n, 1)).astype(float)
    return rng.normal(size=(n, width))


@pytest.mark.parametrize("hidden, output, loss, kind", CONFIGS)
def test_model_gradients_match_finite_differences(hidden, output, loss, kind, rng, float64):
    import copy

    model = fd.Sequential([fd.layers.Dense(5, activation=hidden, input_shape=(4,))] + copy.deepcopy(output))
    model.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss=loss)
    x = rng.normal(size=(6, 4))
    t = _targets(kind, rng, 6, model.output_shape[-1])
    model.fit(x, t, batch_size=6, epochs=1, shuffle=False, verbose=0)  # lr 0: fills grads, moves nothing
    analytical = model._store.grads.copy()
    numerical = numerical_gradient(lambda: model.evaluate(x, t), model._store.params)
    assert relative_error(numerical, analytical, floor=1e-2) < 1e-6


def test_training_matches_an_independent_numpy_loop(rng, float64):
    """Adam, shuffle off: every step's forward, loss, backward and update recomputed with the oracle."""
    x = rng.normal(size=(20, 4))
    y = rng.integers(0, 3, 20)
    model = fd.Sequential([fd.layers.Dense(5, activation="tanh", input_shape=(4,)), fd.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=fd.optimizers.Adam(learning_rate=0.05), loss="sparse_categorical_crossentropy")
    weights = model.get_weights()
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)

    states = [{} for _ in weights]
    for _ in range(3):
        for start in range(0, 20, 8):
            xb, yb = x[start : start + 8], y[start : start + 8]
            W1, b1, W2, b2 = weights
            z1, h = reference.dense_forward(xb, W1, b1, "tanh")
            _, p = reference.dense_forward(h, W2, b2, "softmax")
            dLdP = reference.loss_gradient("sparse_categorical_crossentropy", yb, p)
            dH, dW2, db2 = reference.dense_backward(h, W2, b2, dLdP, "softmax")
            _, dW1, db1 = reference.dense_backward(xb, W1, b1, dH, "tanh")
            for i, g in enumerate([dW1, db1, dW2, db2]):
                weights[i], states[i] = reference.optimizer_step("adam", weights[i], g, states[i], learning_rate=0.05)
    for actual, expected in zip(model.get_weights(), weights):
        np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12)


def test_same_seed_same_weights(rng):
    x, y = _blobs(rng)

    def train():
        fd.set_seed(7)
        model = _classifier()
        model.fit(x, y, batch_size=8, epochs=3, verbose=0)
        return model.get_weights()

    for a, b in zip(train(), train()):
        np.testing.assert_array_equal(a, b)


def test_validation_split_holds_out_the_last_samples(rng):
    x, y = _blobs(rng, n=50)
    model = _classifier(optimizer=fd.optimizers.SGD(learning_rate=0.0))
    history = model.fit(x, y, epochs=1, validation_split=0.2, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[40:], y[40:])[0], rel=1e-6)
    history = model.fit(x, y, epochs=1, validation_data=(x[:10], y[:10]), verbose=0)
    assert history.history["val_accuracy"][0] == pytest.approx(model.evaluate(x[:10], y[:10])[1])


def test_full_batch_gradient_descent(rng):
    x, y = _blobs(rng)
    model = _classifier(optimizer=fd.optimizers.SGD(learning_rate=0.5))
    history = model.fit(x, y, batch_size=len(x), epochs=20, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]


def test_frozen_layers_are_not_updated(rng):
    x, y = _blobs(rng)
    model = _classifier()
    model.layers[0].trainable = False
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    frozen = model.layers[0].get_weights()
    trainable = model.layers[1].get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    for before, after in zip(frozen, model.layers[0].get_weights()):
        np.testing.assert_array_equal(before, after)
    for before, after in zip(trainable, model.layers[1].get_weights()):
        assert np.all(before != after)  # Adam moves every element of a layer that trains


def test_stop_training_from_a_callback(rng):
    x, y = _blobs(rng)
    model = _classifier()

    class StopAfterTwoBatches(fd.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            assert "loss" in logs
            if batch == 1:
                self.model.stop_training = True

    history = model.fit(x, y, batch_size=8, epochs=5, callbacks=[StopAfterTwoBatches()], verbose=0)
    assert len(history.history["loss"]) == 1


def test_input_layer_lists_and_integer_inputs(rng):
    model = fd.Sequential([fd.layers.Input((2,)), fd.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit([[0, 1], [1, 0], [1, 1]], [0, 1, 2], epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.predict([[1, 2]]).shape == (1, 1)


def test_model_built_from_data_when_no_input_shape(rng):
    model = fd.Sequential([fd.layers.Dense(4), fd.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(rng.normal(size=(10, 3)), rng.normal(size=(10, 2)), verbose=0)
    assert model.count_params() == 3 * 4 + 4 + 4 * 2 + 2


def test_float32_contiguous_input_is_used_without_a_copy(rng):
    x = np.ascontiguousarray(rng.normal(size=(5, 3)).astype(np.float32))
    assert validation.float_array(x, "x", np.float32) is x
    assert validation.float_array(x.astype(np.float64), "x", np.float32) is not x


def test_weights_round_trip_and_errors(rng):
    model = _classifier()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(6, 8), (8,), (8, 3), (3,)]
    weights[0][:] = 1.0
    model.set_weights(weights)
    assert np.all(model.layers[0].params["W"] == 1.0)
    with pytest.raises(ValueError, match="expected a list of 4 arrays, received 3"):
        model.set_weights(weights[:3])
    with pytest.raises(ValueError, match=r"weights\[1\] \(dense_\d+\.b\): expected shape \(8,\)"):
        model.set_weights([weights[0], np.zeros(7), weights[2], weights[3]])
    assert np.all(model.layers[0].params["W"] == 1.0)  # nothing written on error


def test_summary_and_count_params():
    model = _classifier()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(None, 8)" in text and "(None, 3)" in text
    assert "Total params: 83" in text and "Trainable params: 83" in text
    assert model.count_params() == 6 * 8 + 8 + 8 * 3 + 3


def test_config_round_trip():
    model = _classifier()
    clone = fd.Sequential.from_config(model.get_config())
    assert clone.get_config()["layers"][1] == model.get_config()["layers"][1]
    clone.build()
    assert clone.count_params() == model.count_params()


# -- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_args, error, match",
    [
        (lambda x, y: (x, y[:-1]), ValueError, "y: expected 60 targets .*received 59"),
        (lambda x, y: (x[:, :5], y), ValueError, r"x: expected samples of shape \(6,\).*received an array of shape \(60, 5\)"),
        (lambda x, y: (x, y + 3), ValueError, r"y: expected class labels in \[0, 3\).*received label [345]"),
        (lambda x, y: (x, -y), ValueError, "received label -"),
        (lambda x, y: (np.where(x > 2, np.nan, x), y), ValueError, "x: expected finite values, received .* NaN or infinite"),
        (lambda x, y: (np.full_like(x, np.inf), y), ValueError, "x: expected finite values"),
        (lambda x, y: (x[:0], y[:0]), ValueError, "x: expected at least one value"),
        (lambda x, y: (x.astype(str), y), TypeError, "x: expected an array of real numbers"),
        (lambda x, y: (x.astype(object), y), TypeError, "x: expected an array of real numbers"),
        (lambda x, y: (x[0], y), ValueError, "x: expected an array with at least 2 dimension"),
        (lambda x, y: (x, None), ValueError, "y: expected 60 targets"),
        (lambda x, y: (x, np.eye(4)[y % 4]), ValueError, r"y: expected integer class labels of shape \(60,\)"),
    ],
)
def test_fit_refuses_bad_data(make_args, error, match, rng):
    x, y = _blobs(rng)
    model = _classifier()
    before = model.get_weights()
    with pytest.raises(error, match=match):
        model.fit(*make_args(x, y), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size: expected a positive integer, received 0"),
        ({"batch_size": 2.0}, TypeError, "batch_size: expected a positive integer"),
        ({"epochs": 0}, ValueError, "epochs: expected a positive integer, received 0"),
        ({"epochs": -3}, ValueError, "epochs"),
        ({"verbose": 3}, ValueError, "verbose: expected 'auto', 0, 1 or 2, received 3"),
        ({"validation_split": 1.0}, ValueError, r"validation_split: expected a number in \[0.0, 1.0\)"),
        ({"validation_split": 0.99}, ValueError, "leaves an empty training or validation set"),
        ({"validation_data": (np.zeros((2, 6)),)}, TypeError, r"validation_data: expected a tuple \(x_val, y_val\)"),
        ({"validation_data": (np.zeros((2, 6)), [0, 7])}, ValueError, r"validation_data\[1\]: expected class labels in \[0, 3\)"),
        ({"callbacks": "history"}, TypeError, "callbacks: expected a list of Callback"),
        ({"callbacks": [print]}, TypeError, r"callbacks\[0\]: expected a fastdnn.callbacks.Callback"),
        ({"shuffle": "yes"}, TypeError, "shuffle: expected True or False"),
    ],
)
def test_fit_refuses_bad_arguments(kwargs, error, match, rng):
    x, y = _blobs(rng)
    with pytest.raises(error, match=match):
        _classifier().fit(x, y, **{"verbose": 0, **kwargs})


def test_one_hot_targets_of_the_wrong_width(rng):
    x, y = _blobs(rng)
    model = fd.Sequential([fd.layers.Dense(3, activation="softmax", input_shape=(6,))])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"y: expected targets of shape \(60, 3\).*received an array of shape \(60, 4\)"):
        model.fit(x, np.eye(4)[y], verbose=0)


def test_fit_before_compile_and_other_misuse(rng):
    x, y = _blobs(rng)
    model = fd.Sequential([fd.layers.Dense(3, activation="softmax", input_shape=(6,))])
    with pytest.raises(RuntimeError, match="fit: the model must be compiled first"):
        model.fit(x, y)
    with pytest.raises(RuntimeError, match="evaluate: the model must be compiled first"):
        model.evaluate(x, y)
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        model.compile(optimizer="adamm", loss="mse")
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'"):
        model.compile(optimizer="adam", loss="crossentropy")
    with pytest.raises(ValueError, match="loss: expected a loss name"):
        model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        model.compile(optimizer="adam", loss="mse", metrics=["acuracy"])
    with pytest.raises(TypeError, match="metrics: expected a list"):
        model.compile(optimizer="adam", loss="mse", metrics="accuracy")
    with pytest.raises(TypeError, match="layer: expected a fastdnn.layers.Layer"):
        model.add("dense")
    linear = fd.Sequential([fd.layers.Dense(3, input_shape=(6,))])
    with pytest.raises(ValueError, match="expects probabilities.*from_logits=True"):
        linear.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="sparse_categorical_accuracy needs sparse"):
        linear.compile(optimizer="adam", loss="mse", metrics=["sparse_categorical_accuracy"])


def test_predict_refuses_bad_input(rng):
    model = _classifier()
    with pytest.raises(ValueError, match=r"x: expected samples of shape \(6,\)"):
        model.predict(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(np.zeros((3, 6)), batch_size=0)


# -- progress output ------------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _progress_output(capsys, verbose, monkeypatch=None, terminal=False):
    rng = np.random.default_rng(0)
    x, y = _blobs(rng)
    model = _classifier()
    if terminal:
        stream = _Terminal()
        monkeypatch.setattr("sys.stdout", stream)
        model.fit(x, y, batch_size=8, epochs=2, verbose=verbose, validation_split=0.1)
        return stream.getvalue()
    model.fit(x, y, batch_size=8, epochs=2, verbose=verbose, validation_split=0.1)
    return capsys.readouterr().out


def test_verbose_0_is_silent(capsys):
    assert _progress_output(capsys, 0) == ""


def test_verbose_1_without_terminal_prints_one_line_per_epoch(capsys):
    out = _progress_output(capsys, 1)
    assert "\r" not in out
    lines = out.strip().splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert lines[1].startswith("7/7 ") and "loss: " in lines[1] and "val_accuracy: " in lines[1]


def test_verbose_1_on_a_terminal_redraws_one_bar(capsys, monkeypatch):
    out = _progress_output(capsys, 1, monkeypatch, terminal=True)
    assert "\r" in out
    assert out.count("\n") == 4  # two "Epoch" lines and one finished bar per epoch


def test_verbose_2_prints_one_line_per_epoch(capsys):
    lines = _progress_output(capsys, 2).strip().splitlines()
    assert len(lines) == 4 and lines[1].startswith("7/7 - ") and "/step - loss: " in lines[1]
