"""SimpleRNN, LSTM and GRU: kernels against the NumPy reference (BPTT), shapes, arguments, configs."""

import numpy as np
import pytest

import fastdnn as fd
from tests.conftest import DTYPES
from fastdnn.verify import reference

TOL = {np.float32: dict(rtol=5e-4, atol=5e-5), np.float64: dict(rtol=1e-9, atol=1e-12)}
LAYERS = [fd.layers.SimpleRNN, fd.layers.LSTM, fd.layers.GRU]
# (batch, steps, features, units)
SIZES = [(1, 1, 1, 1), (1, 6, 3, 2), (4, 5, 2, 7), (9, 3, 8, 4), (2, 12, 5, 16)]


def _built(layer, shape, dtype):
    layer.build(shape[1:], dtype)
    return layer


def _reference(cls, x, params, dLdY, return_sequences, activation="tanh", recurrent="sigmoid"):
    W, U, b = params["W"], params["U"], params.get("b")
    if cls is fd.layers.SimpleRNN:
        y = reference.simple_rnn(x, W, U, b, activation, return_sequences)
        return y, reference.simple_rnn_backward(x, W, U, b, dLdY, activation, return_sequences)
    forward, backward = (reference.lstm, reference.lstm_backward) if cls is fd.layers.LSTM else (reference.gru, reference.gru_backward)
    y, _ = forward(x, W, U, b, activation, recurrent, return_sequences)
    return y, backward(x, W, U, b, dLdY, activation, recurrent, return_sequences)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cls", LAYERS)
def test_recurrent_layer_matches_reference(cls, size, return_sequences, dtype, rng):
    n, T, D, units = size
    layer = _built(cls(units, return_sequences=return_sequences), (n, T, D), dtype)
    for value in layer.params.values():
        value[...] = rng.normal(0.0, 0.5, value.shape)
    x = rng.normal(size=(n, T, D)).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype and y.shape == (n, *layer.output_shape)
    dLdY = rng.normal(size=y.shape).astype(dtype)
    y_ref, grads_ref = _reference(cls, x, layer.params, dLdY, return_sequences)
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])
    dX = layer.backward(dLdY)
    for got, expected in zip([dX, layer.grads["W"], layer.grads["U"], layer.grads["b"]], grads_ref):
        np.testing.assert_allclose(got, expected, **TOL[dtype])


@pytest.mark.parametrize("cls", LAYERS)
def test_other_activations_no_bias_and_no_input_gradient(cls, rng):
    kwargs = {"activation": "sigmoid"} if cls is fd.layers.SimpleRNN else {"activation": "softplus", "recurrent_activation": "tanh"}
    layer = _built(cls(3, use_bias=False, return_sequences=True, **kwargs), (2, 4, 3), np.float64)
    assert set(layer.params) == {"W", "U"}
    layer.compute_input_grad = False
    x = rng.normal(size=(2, 4, 3))
    y = layer.forward(x, training=True)
    dLdY = rng.normal(size=y.shape)
    names = ("sigmoid", "sigmoid") if cls is fd.layers.SimpleRNN else ("softplus", "tanh")
    y_ref, grads_ref = _reference(cls, x, layer.params, dLdY, True, *names)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10)
    assert layer.backward(dLdY) is None
    np.testing.assert_allclose(layer.grads["W"], grads_ref[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.grads["U"], grads_ref[2], rtol=1e-9, atol=1e-12)


def test_a_smaller_last_batch_reuses_the_buffers(rng):
    layer = _built(fd.layers.LSTM(4, return_sequences=True), (8, 5, 3), np.float32)
    x = rng.normal(size=(8, 5, 3)).astype(np.float32)
    full = layer.forward(x, training=True).copy()
    part = layer.forward(x[:3], training=True)
    np.testing.assert_allclose(part, full[:3], rtol=1e-6)
    layer.backward(np.ones_like(part))
    gates = layer._cache[1]
    assert gates.base is not None  # a view of the flat buffer, not a new allocation


@pytest.mark.parametrize(
    "cls, units, steps, features, params",
    [
        # Keras: SimpleRNN units (features + units + 1); LSTM 4 units (features + units + 1);
        # GRU (reset_after) 3 units (features + units + 2)
        (fd.layers.SimpleRNN, 32, 8, 8, 32 * (8 + 32 + 1)),
        (fd.layers.LSTM, 128, 50, 16, 4 * 128 * (16 + 128 + 1)),
        (fd.layers.GRU, 10, 7, 3, 3 * 10 * (3 + 10 + 2)),
    ],
)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_output_shapes_and_parameter_counts_match_keras(cls, units, steps, features, params, return_sequences):
    layer = cls(units, return_sequences=return_sequences)
    model = fd.Sequential([fd.layers.Input((steps, features)), layer])
    model.build()
    expected = (steps, units) if return_sequences else (units,)
    assert layer.output_shape == expected and layer.count_params() == params
    lines = []
    model.summary(print_fn=lines.append)
    assert any(str((None, *expected)) in line and f"{params:,}" in line for line in lines)


def test_keras_defaults_and_initial_weights():
    fd.set_seed(0)
    lstm = _built(fd.layers.LSTM(6), (1, 3, 4), np.float64)
    assert lstm.cell_activation.name == "tanh" and lstm.recurrent_activation.name == "sigmoid"
    assert type(lstm.recurrent_initializer).__name__ == "Orthogonal"
    assert lstm.unit_forget_bias and not lstm.return_sequences
    b = lstm.params["b"]
    np.testing.assert_array_equal(b[6:12], 1.0)
    np.testing.assert_array_equal(np.delete(b, np.s_[6:12]), 0.0)
    U = lstm.params["U"]  # (6, 24), orthonormal rows
    np.testing.assert_allclose(U @ U.T, np.eye(6), atol=1e-12)
    gru = _built(fd.layers.GRU(5), (1, 3, 4), np.float64)
    assert gru.reset_after and gru.params["b"].shape == (2, 15)
    rnn = _built(fd.layers.SimpleRNN(5), (1, 3, 4), np.float64)
    np.testing.assert_allclose(rnn.params["U"] @ rnn.params["U"].T, np.eye(5), atol=1e-12)
    assert rnn.name.startswith("simple_rnn") and lstm.name.startswith("lstm")
    assert not hasattr(lstm, "activation")  # not fused with a loss like a Dense output


def test_no_forget_bias_when_asked():
    lstm = _built(fd.layers.LSTM(3, unit_forget_bias=False), (1, 2, 2), np.float64)
    np.testing.assert_array_equal(lstm.params["b"], 0.0)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: fd.layers.LSTM(0), ValueError, "units: expected a positive integer"),
        (lambda: fd.layers.SimpleRNN(3, activation="softmax"), ValueError, "activation: recurrent layers support"),
        (lambda: fd.layers.LSTM(3, recurrent_activation="gelu"), ValueError, "recurrent_activation: recurrent layers support .*'gelu'"),
        (lambda: fd.layers.GRU(3, activation="nope"), ValueError, "unknown activation 'nope'"),
        (lambda: fd.layers.GRU(3, reset_after=False), ValueError, "reset_after: only True"),
        (lambda: fd.layers.LSTM(3, return_sequences="yes"), TypeError, "return_sequences: expected True or False"),
        (lambda: fd.layers.LSTM(3, unit_forget_bias=None), TypeError, "unit_forget_bias: expected True or False"),
        (lambda: fd.layers.SimpleRNN(3, recurrent_initializer="nope"), ValueError, "unknown initializer 'nope'"),
        (lambda: fd.layers.LSTM(3).build((8,)), ValueError, r"input_shape: LSTM .* expects samples of shape \(steps, features\)"),
    ],
)
def test_arguments_are_validated(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "layer",
    [
        fd.layers.SimpleRNN(4, activation="relu", use_bias=False, return_sequences=True, input_shape=(5, 2), name="r"),
        fd.layers.LSTM(3, recurrent_activation="tanh", unit_forget_bias=False, kernel_initializer="he_uniform"),
        fd.layers.GRU(2, recurrent_initializer=fd.initializers.Orthogonal(gain=0.5), return_sequences=True),
    ],
)
def test_config_round_trip(layer):
    clone = fd.layers.get(fd.layers.serialize(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


def test_stacked_recurrent_model_trains(rng):
    x = rng.normal(size=(64, 6, 3)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    model = fd.Sequential(
        [fd.layers.Input((6, 3)), fd.layers.GRU(8, return_sequences=True), fd.layers.SimpleRNN(8), fd.layers.Dense(2, activation="softmax")]
    )
    model.compile(optimizer=fd.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    before = model.evaluate(x, y)
    model.fit(x, y, batch_size=16, epochs=10, verbose=0)
    assert model.evaluate(x, y) < 0.8 * before


def test_float32_tanh_and_sigmoid_are_within_a_few_ulp_and_keep_nan():
    import numba

    from fastdnn.kernels.cpu import recurrent as kernels

    @numba.njit
    def apply(z, t, s):
        for i in range(z.shape[0]):
            t[i] = kernels.fast_tanh(z[i])
            s[i] = kernels.fast_sigmoid(z[i])

    z = np.concatenate([np.linspace(-20, 20, 200001), [0.0, 1e-30, -1e-8, np.nan]])
    for dtype, tol in ((np.float32, 5e-7), (np.float64, 1e-15)):
        t, s = np.empty(z.size, dtype), np.empty(z.size, dtype)
        apply(z.astype(dtype), t, s)
        exact = z.astype(dtype).astype(np.float64)
        np.testing.assert_allclose(t[:-1], np.tanh(exact[:-1]), rtol=tol, atol=tol)
        np.testing.assert_allclose(s[:-1], reference.sigmoid(exact[:-1]), rtol=0, atol=tol)
        assert np.isnan(t[-1]) and np.isnan(s[-1])


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("cls", LAYERS)
def test_fastdnn_pool_splits_the_batch_and_every_product(cls, return_sequences, parts, monkeypatch, rng):
    """Under a pool plan the steps run as row parts in several threads and every product is cut into
    parts (thresholds lowered so that these small ones are too): still the reference's results."""
    from fastdnn import threads

    monkeypatch.setattr(threads, "MIN_PART_FLOPS", 1)
    monkeypatch.setattr(threads, "MIN_PART_ROWS", 4)
    n, T, D, units = 37, 6, 5, 7  # parts of 18-19 rows, or of 12-13
    layer = _built(cls(units, return_sequences=return_sequences), (n, T, D), np.float64)
    for value in layer.params.values():
        value[...] = rng.normal(0.0, 0.5, value.shape)
    x = rng.normal(size=(n, T, D))
    seen = []
    run_parts = threads._run_parts
    monkeypatch.setattr(threads, "_run_parts", lambda bounds, body: (seen.append(len(bounds) - 1), run_parts(bounds, body)))
    threads.use_plan(threads.Plan(1, parts))
    try:
        y = layer.forward(x, training=True)
        dLdY = rng.normal(size=y.shape)
        dX = layer.backward(dLdY)
    finally:
        fd.set_num_threads(1)  # the suite's pinned count (conftest)
    assert seen and set(seen) == {parts}  # the steps and every product ran in parts
    y_ref, grads_ref = _reference(cls, x, layer.params, dLdY, return_sequences)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    for got, expected in zip([dX, layer.grads["W"], layer.grads["U"], layer.grads["b"]], grads_ref):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
