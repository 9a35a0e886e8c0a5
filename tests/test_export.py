"""ONNX export: every layer, activation and model kind, run in onnxruntime and compared with predict."""

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastdnn as fd  # noqa: E402
from fastdnn.export import onnx as onnx_export  # noqa: E402

L = fd.layers
RTOL, ATOL = 1e-5, 1e-6  # float32


def _cases():
    """name -> (layers, sample shape; None for integer indices of shape (7,) into 10 rows)."""
    activations = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu", "softmax"]
    cases = {f"Dense({a})": ([L.Dense(6, activation=a, input_shape=(5,))], (5,)) for a in activations}
    cases.update({
        "Activation(leaky_relu, slope 0.1), Activation(elu, alpha 0.5)": (
            [L.Dense(6, use_bias=False, input_shape=(5,)), L.Activation("leaky_relu", negative_slope=0.1), L.Activation("elu", alpha=0.5)], (5,)),
        "MLP with Dropout": ([L.Dense(8, activation="relu", input_shape=(5,)), L.Dropout(0.5), L.Dense(3, activation="softmax")], (5,)),
        "Dense on 3-D input": ([L.Dense(4, activation="tanh", input_shape=(3, 5))], (3, 5)),
        "Flatten, Reshape": ([L.Reshape((4, 3), input_shape=(12,)), L.Flatten(), L.Reshape((2, -1))], (12,)),
        "Conv2D same/valid, strides, dilation, pooling": ([
            L.Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(13, 17, 2)),
            L.MaxPooling2D(2, padding="same"),
            L.Conv2D(3, (2, 3), dilation_rate=(1, 2), use_bias=False),
            L.AveragePooling2D(2, strides=1, padding="same"),
            L.Flatten(), L.Dense(2, activation="softmax"),
        ], (13, 17, 2)),
        "Conv2D valid, max/avg pooling valid, global pooling": ([
            L.Conv2D(3, 2, activation="gelu", input_shape=(8, 9, 1)), L.AveragePooling2D((2, 3)), L.MaxPooling2D(2, strides=1),
            L.GlobalMaxPooling2D(),
        ], (8, 9, 1)),
        "GlobalAveragePooling2D(keepdims)": ([L.GlobalAveragePooling2D(keepdims=True, input_shape=(4, 5, 3)), L.Reshape((3,))], (4, 5, 3)),
        "Conv1D causal/same, pooling 1-D": ([
            L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="silu", input_shape=(9, 2)),
            L.MaxPooling1D(2), L.Conv1D(3, 2, padding="same", strides=2), L.AveragePooling1D(3, strides=2, padding="same"),
            L.GlobalMaxPooling1D(),
        ], (9, 2)),
        "GlobalAveragePooling1D": ([L.Conv1D(4, 2, input_shape=(6, 3)), L.GlobalAveragePooling1D()], (6, 3)),
        "SimpleRNN, LSTM, GRU stacked": ([
            L.SimpleRNN(4, return_sequences=True, input_shape=(6, 3)), L.LSTM(5, return_sequences=True), L.GRU(3),
        ], (6, 3)),
        "recurrent cell activations, no bias": ([
            L.SimpleRNN(4, activation="relu", use_bias=False, return_sequences=True, input_shape=(6, 3)),
            L.LSTM(5, activation="linear", recurrent_activation="tanh", return_sequences=True),
            L.GRU(3, activation="leaky_relu", return_sequences=True), L.LSTM(2, activation="softplus", use_bias=False),
        ], (6, 3)),
        "Embedding, LSTM, Dense": ([L.Embedding(10, 4, input_shape=(7,)), L.LSTM(3), L.Dense(2, activation="sigmoid")], None),
        "BatchNormalization (trained statistics)": ([
            L.Dense(4, input_shape=(3,)), L.BatchNormalization(), L.Activation("relu"), L.BatchNormalization(center=False, scale=False),
        ], (3,)),
        "Conv2D, BatchNormalization": ([L.Conv2D(3, 3, padding="same", input_shape=(5, 5, 2)), L.BatchNormalization()], (5, 5, 2)),
    })
    return cases


CASES = _cases()


def _model_and_inputs(name):
    layers, shape = CASES[name]
    rng = np.random.default_rng(7)
    model = fd.Sequential(layers)
    model.compile(optimizer="adam", loss="mse")
    x = rng.integers(0, 10, size=(5, 7)) if shape is None else rng.normal(size=(5, *shape)).astype(np.float32)
    # a few steps of training so that biases, moving statistics and recurrent weights are not at their start
    model.fit(x, rng.normal(size=(5, *model.output_shape)), epochs=3, batch_size=2, verbose=0)
    return model, x


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


@pytest.mark.parametrize("name", list(CASES))
def test_exported_model_matches_predict_in_onnxruntime(name, tmp_path):
    model, x = _model_and_inputs(name)
    path = tmp_path / "model.onnx"
    model.export(path, format="onnx")
    exported = onnx.load(path)
    assert exported.opset_import[0].version == onnx_export.OPSET
    expected = model.predict(x)
    result = _run(path, x)
    assert result.dtype == np.float32 and result.shape == expected.shape
    np.testing.assert_allclose(result, expected, rtol=RTOL, atol=ATOL)
    # the batch axis is dynamic: one sample gives one row
    np.testing.assert_allclose(_run(path, x[:1]), expected[:1], rtol=RTOL, atol=ATOL)


def test_every_registered_layer_and_activation_has_a_case():
    covered = {type(layer) for layers, _ in CASES.values() for layer in layers}
    assert set(onnx_export.CONVERTERS) <= covered
    exportable = {cls for name, cls in L.registry.canonical_items()} - {L.InputLayer}
    assert exportable <= set(onnx_export.CONVERTERS), "a registered layer has no ONNX converter"
    assert set(fd.activations.registry.names()) - {"swish"} <= onnx_export._EXPORTED_ACTIVATIONS


class Doubling(L.Dense):
    """A user's subclass: its forward is unknown to the exporter."""

    def forward(self, x, training=False):
        return 2 * super().forward(x, training)


def test_user_layers_and_bad_arguments_are_refused_before_writing(tmp_path):
    path = tmp_path / "model.onnx"
    model = fd.Sequential([L.Dense(3, input_shape=(2,)), Doubling(2, name="doubling")])
    model.build()
    with pytest.raises(ValueError, match=r"model: layer 'doubling' \(Doubling\) has no ONNX export; supported layers: "):
        model.export(path)
    assert not os.path.exists(path)
    with pytest.raises(ValueError, match="format: expected one of 'onnx', received 'tf_saved_model'"):
        model.export(path, format="tf_saved_model")
    unbuilt = fd.Sequential([L.Dense(3)])
    with pytest.raises(ValueError, match="model: the model must be built"):
        unbuilt.export(path)
    assert not os.path.exists(path)
    with pytest.raises(TypeError, match="filepath: expected a path"):
        fd.Sequential([L.Dense(3, input_shape=(2,))]).export(3)
