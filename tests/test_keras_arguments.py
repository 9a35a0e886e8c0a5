"""Keras 3's fit / evaluate / predict arguments: verbose, sample_weight, class_weight, validation
settings, and the arguments fastdnn refuses (each by name, with the reason).

Weights reduce as Keras 3's "sum_over_batch_size" does (``sum_i w_i loss_i / n``), so an integer
weight ``k`` counts a sample as ``k`` copies of its row: the weighted loss times ``n`` equals the
unweighted loss of the repeated rows times their count, and one full-batch SGD step on weighted rows
equals one on the repeated rows with the learning rate scaled by ``count / n``.
"""

import numpy as np
import pytest

import fastdnn as fd

L = fd.layers
WEIGHTS = np.array([1.0, 2.0, 0.0, 3.0, 1.0, 1.0, 2.0, 1.0])  # 0 drops a row, 2 and 3 repeat one
REPEATED = np.repeat(np.arange(len(WEIGHTS)), WEIGHTS.astype(int))
LOSSES = [  # loss, output activation, target kind
    ("sparse_categorical_crossentropy", "softmax", "labels"),  # fused softmax + crossentropy
    ("categorical_crossentropy", "softmax", "one_hot"),
    ("categorical_crossentropy_logits", "linear", "one_hot"),
    ("binary_crossentropy", "sigmoid", "multi_hot"),
    ("mse", "linear", "real"),
    ("mae", "tanh", "real"),
]


def _targets(kind, rng, n, width=3):
    if kind == "labels":
        return rng.integers(0, width, n)
    if kind == "one_hot":
        return np.eye(width)[rng.integers(0, width, n)]
    if kind == "multi_hot":
        return (rng.random((n, width)) > 0.5).astype(float)
    return rng.normal(size=(n, width))


def _model(loss, activation, learning_rate=0.1, input_shape=(4,)):
    fd.set_seed(3)
    model = fd.Sequential([L.Dense(5, activation="tanh", input_shape=input_shape), L.Dense(3, activation=activation)])
    if loss == "categorical_crossentropy_logits":
        loss = fd.losses.CategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=fd.optimizers.SGD(learning_rate), loss=loss)
    return model


@pytest.mark.parametrize("loss, activation, kind", LOSSES)
def test_weighted_evaluate_equals_the_repeated_rows(loss, activation, kind):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 4)), _targets(kind, rng, 8)
    model = _model(loss, activation)
    weighted = model.evaluate(x, y, sample_weight=WEIGHTS, batch_size=3)
    repeated = model.evaluate(x[REPEATED], y[REPEATED])
    assert weighted * len(WEIGHTS) == pytest.approx(repeated * len(REPEATED), rel=1e-12)
    assert model.evaluate(x, y, sample_weight=np.ones(8)) == pytest.approx(model.evaluate(x, y), rel=1e-12)
    model.fit(x, y, batch_size=None, epochs=1, verbose=0)  # None: 32, as in Keras


@pytest.mark.parametrize("shuffle", [False, True])  # True: the weights are gathered with their rows
@pytest.mark.parametrize("loss, activation, kind", LOSSES)
def test_a_weighted_full_batch_step_equals_the_step_on_repeated_rows(loss, activation, kind, shuffle):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 4)), _targets(kind, rng, 8)
    weighted = _model(loss, activation)
    start = weighted.get_weights()
    history = weighted.fit(x, y, sample_weight=WEIGHTS, batch_size=8, epochs=1, shuffle=shuffle, verbose=0)
    repeated = _model(loss, activation, learning_rate=0.1 * len(REPEATED) / len(WEIGHTS))
    repeated.set_weights(start)
    reference = repeated.fit(x[REPEATED], y[REPEATED], batch_size=len(REPEATED), epochs=1, shuffle=False, verbose=0)
    for a, b in zip(weighted.get_weights(), repeated.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert history.history["loss"][0] * len(WEIGHTS) == pytest.approx(reference.history["loss"][0] * len(REPEATED), rel=1e-5)


def test_weights_of_a_sequence_output_apply_to_every_step_of_the_sample():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(8, 5, 4)), rng.normal(size=(8, 5, 3))
    model = _model("mse", "linear", input_shape=(5, 4))
    weighted = model.evaluate(x, y, sample_weight=WEIGHTS)
    assert weighted * len(WEIGHTS) == pytest.approx(model.evaluate(x[REPEATED], y[REPEATED]) * len(REPEATED), rel=1e-12)


@pytest.mark.parametrize("kind, loss, activation", [
    ("labels", "sparse_categorical_crossentropy", "softmax"),
    ("one_hot", "categorical_crossentropy", "softmax"),
    ("binary", "binary_crossentropy", "sigmoid"),
])
def test_class_weight_is_the_sample_weight_of_each_class(kind, loss, activation):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2 if kind == "binary" else 3, 12)
    y = {"labels": labels, "one_hot": np.eye(3)[labels], "binary": labels.reshape(-1, 1).astype(float)}[kind]
    class_weight = {0: 0.5, 1: 3.0}  # class 2 unlisted: weight 1, as in Keras
    x = rng.normal(size=(12, 4))
    models = []
    for arguments in ({"class_weight": class_weight}, {"sample_weight": np.array([class_weight.get(int(c), 1.0) for c in labels])}):
        fd.set_seed(4)
        model = fd.Sequential([L.Dense(4, activation="relu", input_shape=(4,)), L.Dense(1 if kind == "binary" else 3, activation=activation)])
        model.compile(optimizer="adam", loss=loss)
        model.fit(x, y, batch_size=5, epochs=2, verbose=0, **arguments)
        models.append(model)
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(models[0].get_weights(), _unweighted_fit(x, y, kind, loss, activation)))


def _unweighted_fit(x, y, kind, loss, activation):
    fd.set_seed(4)
    model = fd.Sequential([L.Dense(4, activation="relu", input_shape=(4,)), L.Dense(1 if kind == "binary" else 3, activation=activation)])
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, batch_size=5, epochs=2, verbose=0)
    return model.get_weights()


def test_sample_weight_per_output_of_a_functional_model():
    rng = np.random.default_rng(5)
    inputs = fd.Input((4,), name="x")
    h = L.Dense(5, activation="tanh")(inputs)
    model = fd.Model(inputs, {"a": L.Dense(2, name="a")(h), "b": L.Dense(3, activation="softmax", name="b")(h)})
    model.compile(optimizer="sgd", loss={"a": "mse", "b": "sparse_categorical_crossentropy"}, loss_weights={"a": 1.0, "b": 0.5})
    x, ya, yb = rng.normal(size=(8, 4)), rng.normal(size=(8, 2)), rng.integers(0, 3, 8)
    logs = model.evaluate(x, {"a": ya, "b": yb}, sample_weight={"a": WEIGHTS, "b": np.ones(8)}, return_dict=True)
    plain = model.evaluate(x, {"a": ya, "b": yb}, return_dict=True)
    repeated = model.evaluate(x[REPEATED], {"a": ya[REPEATED], "b": yb[REPEATED]}, return_dict=True)
    assert logs["a_loss"] * 8 == pytest.approx(repeated["a_loss"] * len(REPEATED), rel=1e-12)
    assert logs["b_loss"] == pytest.approx(plain["b_loss"], rel=1e-12)
    assert logs["loss"] == pytest.approx(logs["a_loss"] + logs["b_loss"], rel=1e-12)
    one_array = model.evaluate(x, {"a": ya, "b": yb}, sample_weight=WEIGHTS, return_dict=True)  # weights every output
    assert one_array["b_loss"] * 8 == pytest.approx(repeated["b_loss"] * len(REPEATED), rel=1e-12)
    model.fit(x, {"a": ya, "b": yb}, sample_weight=[WEIGHTS, WEIGHTS], epochs=1, batch_size=3, verbose=0)
    with pytest.raises(ValueError, match=r"class_weight: only for a model with one output \(as in Keras\)"):
        model.fit(x, {"a": ya, "b": yb}, class_weight={0: 1.0}, verbose=0)


def test_validation_freq_batch_size_and_weighted_validation_data():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)
    model = _model("sparse_categorical_crossentropy", "softmax")
    history = model.fit(x, y, epochs=5, validation_split=0.25, validation_freq=2, validation_batch_size=2, verbose=0)
    assert len(history.history["loss"]) == 5 and len(history.history["val_loss"]) == 2  # after epochs 2 and 4
    weights = rng.uniform(0, 2, 5)
    history = model.fit(x[:15], y[:15], epochs=1, shuffle=False, validation_data=(x[15:], y[15:], weights), verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[15:], y[15:], sample_weight=weights), rel=1e-12)
    # validation_split holds out the weights of the held-out rows with them
    history = model.fit(x, y, sample_weight=np.r_[np.ones(15), weights], epochs=1, validation_split=0.25, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[15:], y[15:], sample_weight=weights), rel=1e-12)


def test_predict_and_evaluate_take_verbose(capsys):
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(10, 4)), rng.integers(0, 3, 10)
    model = _model("sparse_categorical_crossentropy", "softmax")
    quiet = model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    np.testing.assert_array_equal(model.predict(x, batch_size=4, verbose=1), quiet)
    assert capsys.readouterr().out == "predict: 10 samples in 3 batches of up to 4\n"
    model.evaluate(x, y, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, verbose=2)
    assert capsys.readouterr().out.startswith("loss: ")
    with pytest.raises(ValueError, match=r"verbose: expected 'auto', 0, 1 or 2, received 3"):
        model.predict(x, verbose=3)


@pytest.mark.parametrize("method, argument, value, reason", [
    ("fit", "steps_per_epoch", 3, "an epoch is one pass over the NumPy arrays"),
    ("fit", "validation_steps", 2, "validation is one pass over the validation arrays"),
    ("fit", "max_queue_size", 20, "a Keras 2 argument for data generators"),
    ("fit", "workers", 4, "a Keras 2 argument for data generators"),
    ("fit", "use_multiprocessing", True, "a Keras 2 argument for data generators"),
    ("evaluate", "steps", 2, "evaluate makes one pass over the NumPy arrays"),
    ("evaluate", "callbacks", [fd.callbacks.History()], "only fit reports to callbacks"),
    ("evaluate", "workers", 2, "a Keras 2 argument"),
    ("predict", "steps", 1, "predict makes one pass over the NumPy arrays"),
    ("predict", "callbacks", [fd.callbacks.History()], "only fit reports to callbacks"),
])
def test_keras_arguments_fastdnn_does_not_take_are_refused_by_name(method, argument, value, reason):
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    model = _model("sparse_categorical_crossentropy", "softmax")
    call = {"fit": lambda **kw: model.fit(x, y, verbose=0, **kw), "evaluate": lambda **kw: model.evaluate(x, y, **kw), "predict": lambda **kw: model.predict(x, **kw)}[method]
    with pytest.raises(ValueError, match=rf"^{argument}: not supported by {method}, received .*: {reason}"):
        call(**{argument: value})
    if argument in ("max_queue_size", "workers", "use_multiprocessing"):  # Keras's default values change nothing: accepted
        call(**{argument: {"max_queue_size": 10, "workers": 1, "use_multiprocessing": False}[argument]})
    with pytest.raises(TypeError, match=rf"{method}\(\) got an unexpected keyword argument 'epochz'"):
        call(epochz=2)


def test_bad_weights_are_refused_by_name():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    model = _model("sparse_categorical_crossentropy", "softmax")
    start = model.get_weights()
    cases = [
        ({"sample_weight": np.ones(5)}, ValueError, r"sample_weight: expected one weight per sample, an array of shape \(6,\), received an array of shape \(5,\)"),
        ({"sample_weight": -np.ones(6)}, ValueError, r"sample_weight: expected non-negative weights, received -1.0 at index 0"),
        ({"sample_weight": np.full(6, np.nan)}, ValueError, r"sample_weight: "),
        ({"class_weight": {0: 1.0}, "sample_weight": np.ones(6)}, ValueError, r"class_weight: cannot be used together with sample_weight"),
        ({"class_weight": {3: 1.0}}, ValueError, r"class_weight: expected class indices in \[0, 3\)"),
        ({"class_weight": {0: -1.0}}, ValueError, r"class_weight\[0\]: "),
        ({"class_weight": [1.0, 2.0]}, TypeError, r"class_weight: expected a dict"),
        ({"validation_freq": 0}, ValueError, r"validation_freq: "),
        ({"validation_batch_size": 0}, ValueError, r"validation_batch_size: "),
    ]
    for arguments, error, message in cases:
        with pytest.raises(error, match=message):
            model.fit(x, y, verbose=0, **arguments)
    for a, b in zip(start, model.get_weights()):  # refused before any step
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"sample_weight: expected one weight per sample"):
        model.evaluate(x, y, sample_weight=np.ones((6, 2)))
