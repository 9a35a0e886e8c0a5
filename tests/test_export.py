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


# -- functional models: merge layers, fan-out, several inputs and outputs, shared layers -----------------


def _merge_model(merge, shapes):
    inputs = [fd.Input(shape, name=f"in{i}") for i, shape in enumerate(shapes)]
    return fd.Model(inputs, L.Dense(3, name="head")(merge(inputs)))


def _graph_cases():
    """name -> a function making (functional model, its inputs' sample shapes, None for int64 (7,) indices)."""

    def residual():
        x = fd.Input((6,), name="x")
        h = L.Dense(6, activation="relu")(x)
        h = L.Dense(6)(h)
        return fd.Model(x, L.Activation("relu")(L.Add()([x, h])))

    def two_inputs_two_outputs():
        a, b = fd.Input((4,), name="a"), fd.Input((5, 3), name="b")
        h = L.Concatenate()([L.Dense(6, activation="tanh")(a), L.Flatten()(L.Conv1D(2, 2)(b))])
        return fd.Model([a, b], [L.Dense(3, activation="softmax", name="label")(h), L.Dense(1, name="score")(h)])

    def shared_layer():
        a, b = fd.Input((5,), name="left"), fd.Input((5,), name="right")
        shared = L.Dense(4, activation="elu", name="shared")
        return fd.Model([a, b], L.Subtract()([shared(a), shared(b)]))

    def fan_out_dict_outputs():
        x = fd.Input((6,), name="x")
        h = L.Dense(5, activation="sigmoid")(x)
        outputs = {"first": L.Dense(2)(h), "second": L.Multiply()([h, L.Dense(5)(h), L.Dense(5)(x)])}
        return fd.Model(x, outputs)

    def embedding_and_dense_inputs():
        tokens, extra = fd.Input((7,), name="tokens"), fd.Input((3,), name="extra")
        h = L.GlobalAveragePooling1D()(L.Embedding(10, 4)(tokens))
        return fd.Model([tokens, extra], L.Concatenate()([h, L.Dense(2)(extra)]))

    cases = {
        "residual block (Add, fan-out)": (residual, [(6,)]),
        "two inputs, two outputs (Concatenate)": (two_inputs_two_outputs, [(4,), (5, 3)]),
        "shared layer (Subtract)": (shared_layer, [(5,), (5,)]),
        "fan-out, dict outputs (Multiply of three)": (fan_out_dict_outputs, [(6,)]),
        "Embedding input beside a float input": (embedding_and_dense_inputs, [None, (3,)]),
    }
    for merge in ("Add", "Multiply", "Average", "Maximum", "Minimum"):
        cases[f"{merge} of three"] = (lambda merge=merge: _merge_model(getattr(L, merge)(), [(2, 4)] * 3), [(2, 4)] * 3)
    cases["Add of one"] = (lambda: _merge_model(L.Add(), [(4,)]), [(4,)])
    for axis in (1, 2, -1, -2):
        shapes = [(2, 3, 4), (2, 3, 4)]
        shapes[1] = tuple(d + 2 if i == (axis - 1 if axis > 0 else 3 + axis) else d for i, d in enumerate(shapes[1]))
        cases[f"Concatenate(axis={axis})"] = (lambda axis=axis, shapes=shapes: _merge_model(L.Concatenate(axis=axis), shapes), shapes)
    for axes, shapes in [(1, [(4,), (4,)]), (-1, [(4,), (4,)]), (1, [(3, 4), (3, 5)]), (2, [(3, 4), (5, 4)]), ((1, 2), [(3, 4), (2, 3)]), ((2, 1), [(3, 4), (4, 2)])]:
        for normalize in (False, True):
            cases[f"Dot(axes={axes}, normalize={normalize}) {shapes}"] = (
                lambda axes=axes, shapes=shapes, normalize=normalize: _merge_model(L.Dot(axes, normalize=normalize), shapes), shapes)
    return cases


GRAPH_CASES = _graph_cases()


def _graph_inputs(shapes, rng, n=5):
    return [rng.integers(0, 10, size=(n, 7)) if s is None else rng.normal(size=(n, *s)).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("name", list(GRAPH_CASES))
def test_exported_functional_model_matches_predict_in_onnxruntime(name, tmp_path):
    make, shapes = GRAPH_CASES[name]
    model = make()
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(3)
    xs = _graph_inputs(shapes, rng)
    outputs = model.outputs
    targets = [rng.normal(size=(5, *t.sample_shape)) for t in outputs]
    model.fit(xs, targets if len(targets) > 1 else targets[0], epochs=2, batch_size=2, verbose=0)
    path = tmp_path / "model.onnx"
    model.export(path, format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == model.input_names
    assert [o.name for o in session.get_outputs()] == model.output_names
    expected = model.predict(xs)
    if isinstance(expected, dict):
        expected = [expected[k] for k in model.output_names]
    elif not isinstance(expected, list):
        expected = [expected]
    for rows in (slice(None), slice(0, 1)):  # the batch axis is dynamic
        results = session.run(None, {k: x[rows] for k, x in zip(model.input_names, xs)})
        for result, want in zip(results, expected):
            assert result.dtype == np.float32 and result.shape == want[rows].shape
            np.testing.assert_allclose(result, want[rows], rtol=RTOL, atol=ATOL)


def test_a_shared_layer_and_an_embedding_read_by_another_layer():
    x = fd.Input((5,), name="x")
    shared = L.Dense(5, name="shared")
    model = fd.Model(x, shared(shared(x)))
    exported = onnx_export.to_onnx(model)
    assert sum(node.op_type == "MatMul" for node in exported.graph.node) == 2  # one per call
    assert len(exported.graph.initializer) == 2  # the kernel and the bias, written once
    tokens = fd.Input((4,), name="tokens")
    mixed = fd.Model(tokens, L.Add()([L.Flatten()(L.Embedding(10, 1)(tokens)), L.Dense(4)(tokens)]))
    with pytest.raises(ValueError, match=r"model: layer 'dense\w*' reads the integer input of an Embedding"):
        onnx_export.to_onnx(mixed)
    h = L.Dense(4)(x)
    late = fd.Model(x, L.Embedding(10, 2)(h))
    with pytest.raises(ValueError, match=r"model: Embedding '\w+' must read a model input"):
        onnx_export.to_onnx(late)


def test_every_registered_layer_and_activation_has_a_case():
    covered = {type(layer) for layers, _ in CASES.values() for layer in layers}
    covered |= {type(layer) for make, _ in GRAPH_CASES.values() for layer in make().layers}
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
