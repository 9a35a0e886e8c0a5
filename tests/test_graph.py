"""The functional API (fd.Input, fd.Model): building graphs, training them, describing and saving them,
and the errors raised when a graph or its data is wrong."""

import json
import zipfile

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import distributed

L = fd.layers


def _residual(seed=0):
    fd.set_seed(seed)
    x = fd.Input((6,), name="x")
    h = L.Dense(6, activation="tanh", name="inner")(x)
    r = L.Add(name="skip")([x, h])
    return fd.Model(x, L.Dense(3, activation="softmax", name="out")(r), name="residual")


def _two_by_two(seed=0):
    """Two inputs, a layer shared by two branches, two named outputs."""
    fd.set_seed(seed)
    a, b = fd.Input((4,), name="a"), fd.Input((3,), name="b")
    shared = L.Dense(5, activation="relu", name="shared")
    joined = L.Concatenate(name="join")([L.Dense(5, name="pa")(a), L.Dense(5, name="pb")(b)])
    left, right = shared(joined), shared(L.Dense(10, name="turn")(joined))
    classes = L.Dense(2, activation="softmax", name="classes")(L.Multiply(name="product")([left, right]))
    value = L.Dense(1, name="value")(L.Maximum(name="most")([left, right]))
    return fd.Model({"a": a, "b": b}, {"classes": classes, "value": value}, name="two_by_two")


def _data(rng, n=32):
    x = {"a": rng.normal(size=(n, 4)).astype(np.float32), "b": rng.normal(size=(n, 3)).astype(np.float32)}
    y = {"classes": rng.integers(0, 2, n), "value": rng.normal(size=(n, 1)).astype(np.float32)}
    return x, y


def _compiled(model=None):
    model = model or _two_by_two()
    model.compile(
        optimizer="adam",
        loss={"classes": "sparse_categorical_crossentropy", "value": "mse"},
        loss_weights={"classes": 1.0, "value": 0.5},
        metrics={"classes": ["accuracy"]},
    )
    return model


def test_a_chain_built_functionally_trains_exactly_like_sequential(rng):
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    fd.set_seed(1)
    sequential = fd.Sequential([fd.Input((5,)), L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")])
    inputs = fd.Input((5,))
    outputs = L.Dense(3, activation="softmax")(L.Dense(8, activation="relu")(inputs))
    functional = fd.Model(inputs, outputs)
    functional.set_weights(sequential.get_weights())
    for model in (sequential, functional):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        fd.set_seed(2)
        model.history_ = model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.2).history
    assert sequential.history_ == functional.history_
    for a, b in zip(sequential.get_weights(), functional.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert isinstance(sequential, fd.Model) and functional._outputs[0].fused


def test_residual_predictions_follow_the_graph(rng):
    model = _residual()
    x = rng.normal(size=(5, 6)).astype(np.float32)
    W1, b1, W2, b2 = model.get_weights()
    z = (x + np.tanh(x @ W1 + b1)) @ W2 + b2
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)
    assert [layer.name for layer in model.layers] == ["inner", "skip", "out"]


def test_a_shared_layer_is_one_set_of_weights_called_twice(rng):
    model = _two_by_two()
    shared = model.get_layer("shared")
    assert [layer.name for layer in model.layers].count("shared") == 1
    assert model.count_params() == sum(layer.count_params() for layer in model.layers)
    x, _ = _data(rng, 6)
    out = model.predict(x)
    pa, pb, turn, classes, value = (model.get_layer(n) for n in ("pa", "pb", "turn", "classes", "value"))
    W, b = shared.params["W"], shared.params["b"]
    joined = np.concatenate([x["a"] @ pa.params["W"] + pa.params["b"], x["b"] @ pb.params["W"] + pb.params["b"]], axis=1)
    left = np.maximum(joined @ W + b, 0)
    right = np.maximum((joined @ turn.params["W"] + turn.params["b"]) @ W + b, 0)
    np.testing.assert_allclose(out["value"], np.maximum(left, right) @ value.params["W"] + value.params["b"], rtol=1e-5, atol=1e-5)
    z = (left * right) @ classes.params["W"] + classes.params["b"]
    np.testing.assert_allclose(out["classes"], np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_two_inputs_two_outputs_fit_evaluate_predict_with_keras_names(rng):
    model = _compiled()
    x, y = _data(rng)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.25)
    expected = ["loss", "classes_loss", "value_loss", "classes_accuracy"]
    assert list(history.history) == expected + [f"val_{key}" for key in expected]
    assert model.metrics_names == expected
    logs = model.evaluate(x, y, return_dict=True)
    # the total is the weighted sum of the outputs' (weighted) losses, as Keras 3 reports them
    assert logs["loss"] == pytest.approx(logs["classes_loss"] + logs["value_loss"], rel=1e-9)
    probabilities = model.predict(x)["classes"]
    unweighted = fd.losses.get("sparse_categorical_crossentropy")(y["classes"], probabilities)
    assert logs["classes_loss"] == pytest.approx(unweighted, rel=1e-4)
    value = model.predict(x)["value"]
    assert logs["value_loss"] == pytest.approx(0.5 * np.mean((value - y["value"]) ** 2), rel=1e-4)
    # lists in the model's order are the same data
    as_lists = model.evaluate([x["a"], x["b"]], [y["classes"], y["value"]])
    assert as_lists == pytest.approx(list(logs.values()))


def test_one_loss_for_every_output_and_per_output_metric_lists(rng):
    x = fd.Input((3,))
    h = L.Dense(4, activation="tanh")(x)
    model = fd.Model(x, [L.Dense(2, name="first")(h), L.Dense(2, name="second")(h)])
    model.compile(optimizer="sgd", loss="mse", metrics=[["mae"], []])
    data = rng.normal(size=(10, 3))
    history = model.fit(data, [rng.normal(size=(10, 2)), rng.normal(size=(10, 2))], epochs=1, verbose=0)
    assert list(history.history) == ["loss", "first_loss", "second_loss", "first_mae"]
    assert isinstance(model.predict(data), list)


def test_summary_has_keras_connected_to_column():
    lines = []
    _two_by_two().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in lines[2]
    assert "shared (Dense)" in text and "join[0][0], turn[0][0]" in text
    assert "product (Multiply)" in text and "shared[0][0], shared[1][0]" in text
    assert "a (InputLayer)" in text


def test_get_config_round_trip_rebuilds_the_same_graph(rng):
    model = _two_by_two()
    copy = fd.Model.from_config(json.loads(json.dumps(model.get_config())))
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    copy.set_weights(model.get_weights())
    x, _ = _data(rng, 5)
    for key, values in model.predict(x).items():
        np.testing.assert_array_equal(copy.predict(x)[key], values)


def test_save_and_load_a_graph_model_resumes_training(rng, tmp_path):
    model = _compiled()
    x, y = _data(rng)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "graph.fdnn")
    loaded = fd.load_model(tmp_path / "graph.fdnn")
    assert isinstance(loaded, fd.Model) and not isinstance(loaded, fd.Sequential)
    assert loaded.loss_weights == [1.0, 0.5] and loaded.metrics_names == model.metrics_names
    for key, values in model.predict(x).items():
        np.testing.assert_array_equal(loaded.predict(x)[key], values)
    fd.set_seed(5)
    after = model.fit(x, y, epochs=1, verbose=0, shuffle=False).history
    fd.set_seed(5)
    resumed = loaded.fit(x, y, epochs=1, verbose=0, shuffle=False).history
    assert after == resumed


def test_a_version_1_file_still_loads(rng, tmp_path):
    """Files written before the graph engine (format 1: a Sequential config, one loss) load unchanged."""
    model = fd.Sequential([L.Dense(4, activation="relu", input_shape=(3,)), L.Dense(2, activation="softmax")], name="old")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = rng.normal(size=(8, 3)).astype(np.float32)
    model.fit(x, rng.integers(0, 2, 8), epochs=1, verbose=0)
    model.save(tmp_path / "new.fdnn")
    with zipfile.ZipFile(tmp_path / "new.fdnn") as archive:
        manifest = json.loads(archive.read("fastdnn.json"))
        entries = {name: archive.read(name) for name in archive.namelist() if name != "fastdnn.json"}
    manifest["version"] = 1  # exactly what format 1 wrote
    manifest["model"] = manifest["model"]["config"]
    compiled = manifest["compile"]
    manifest["compile"] = {"optimizer": compiled["optimizer"], "loss": compiled["losses"][0], "metrics": compiled["metrics"][0]}
    with zipfile.ZipFile(tmp_path / "old.fdnn", "w") as archive:
        archive.writestr("fastdnn.json", json.dumps(manifest))
        for name, data in entries.items():
            archive.writestr(name, data)
    loaded = fd.load_model(tmp_path / "old.fdnn")
    assert type(loaded) is fd.Sequential and loaded.name == "old" and loaded.metrics_names == ["loss", "accuracy"]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.iterations == model.optimizer.iterations


def test_weights_in_keras_order_and_validated(rng):
    model = _two_by_two()
    weights = model.get_weights()
    names = [f"{layer.name}.{key}" for layer in model.layers for key in layer.variables]
    assert len(weights) == len(names) and names[:2] == ["pa.W", "pa.b"]
    model.set_weights([w * 0 for w in weights])
    assert all(not w.any() for w in model.get_weights())
    with pytest.raises(ValueError, match=r"weights\[0\] \(pa.W\): expected shape \(4, 5\)"):
        model.set_weights([np.zeros((5, 4))] + weights[1:])


def test_graph_models_train_under_data_parallel_without_mpi(rng):
    model = distributed.data_parallel(_compiled())
    x, y = _data(rng)
    assert len(model.fit(x, y, epochs=2, verbose=0).epoch) == 2


def test_trainable_flags_freeze_a_shared_layer(rng):
    model = _compiled()
    model.get_layer("shared").trainable = False
    before = model.get_layer("shared").get_weights()
    x, y = _data(rng)
    model.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(before, model.get_layer("shared").get_weights()):
        np.testing.assert_array_equal(a, b)


# -- errors at graph build ----------------------------------------------------------------------------


def test_incompatible_merge_shapes_name_the_layer_and_shapes():
    a, b = fd.Input((4,)), fd.Input((3,))
    with pytest.raises(ValueError, match=r"layer 'sum' \(Add\): inputs must have equal shapes, received \(None, 4\), \(None, 3\)"):
        L.Add(name="sum")([a, b])
    with pytest.raises(ValueError, match=r"layer 'join' \(Concatenate\): inputs must match on every axis but axis 1"):
        L.Concatenate(axis=1, name="join")([fd.Input((2, 3)), fd.Input((2, 4))])
    with pytest.raises(ValueError, match=r"layer 'dot' \(Dot\): axes \(1, 1\) of the inputs differ in size"):
        L.Dot(axes=1, name="dot")([a, b])
    with pytest.raises(ValueError, match=r"layer 'minus' \(Subtract\): expected exactly 2 inputs, received 3"):
        L.Subtract(name="minus")([a, a, a])


def test_a_layer_called_on_a_shape_it_was_not_built_for_is_refused():
    dense = L.Dense(2, name="d")
    dense(fd.Input((4,)))
    with pytest.raises(ValueError, match=r"layer 'd' was built for inputs of shape \(None, 4\), but is called on \(None, 5\)"):
        dense(fd.Input((5,)))


def test_outputs_not_reachable_and_unused_inputs_are_refused():
    a, b = fd.Input((4,), name="a"), fd.Input((4,), name="b")
    out = L.Dense(2)(b)
    with pytest.raises(ValueError, match=r"output 0 .* is not reachable from the inputs: it depends on input 'b'"):
        fd.Model(a, out)
    with pytest.raises(ValueError, match=r"inputs: 'a' \(shape \(None, 4\)\) not used by any output"):
        fd.Model([a, b], out)
    with pytest.raises(ValueError, match=r"inputs\[0\]: expected a tensor made by fd.Input"):
        fd.Model(out, out)
    with pytest.raises(TypeError, match=r"outputs\[1\]: expected a symbolic tensor"):
        fd.Model(b, [out, np.zeros(3)])


def test_arrays_must_match_the_models_inputs_and_outputs(rng):
    model = _compiled()
    x, y = _data(rng)
    with pytest.raises(ValueError, match=r"x: expected arrays for the model's inputs \['a', 'b'\]; unknown keys \['c'\], missing \['b'\]"):
        model.fit({"a": x["a"], "c": x["b"]}, y, verbose=0)
    with pytest.raises(ValueError, match=r"x: expected 2 arrays \(the model's inputs \['a', 'b'\]\), received 1"):
        model.predict([x["a"]])
    with pytest.raises(ValueError, match=r"y: expected 2 arrays \(the model's outputs \['classes', 'value'\]\), received 3"):
        model.evaluate(x, [y["classes"], y["value"], y["value"]])
    with pytest.raises(ValueError, match=r"x\['b'\]: expected samples of shape \(3,\)"):
        model.predict({"a": x["a"], "b": x["a"]})
    with pytest.raises(ValueError, match=r"x: every input needs the same number of samples, received \[32, 31\]"):
        model.predict({"a": x["a"], "b": x["b"][:31]})
    with pytest.raises(ValueError, match=r"loss: expected an entry for each output \['classes', 'value'\]; unknown \[\], missing \['value'\]"):
        _two_by_two().compile(optimizer="sgd", loss={"classes": "mse"})


def test_a_symbolic_tensor_passed_as_data_is_refused(rng):
    model = _compiled()
    x, y = _data(rng)
    with pytest.raises(TypeError, match=r"x: received a symbolic tensor .* pass NumPy arrays"):
        model.fit({"a": model.inputs[0], "b": x["b"]}, y, verbose=0)
    sequential = fd.Sequential([L.Dense(2)])
    sequential.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match=r"x: received a symbolic tensor"):
        sequential.fit(fd.Input((3,)), np.zeros((1, 2)), verbose=0)
    assert not sequential.built


def test_a_refused_graph_leaves_nothing_half_built():
    a = fd.Input((4,), name="a")
    merge = L.Add(name="merge")
    with pytest.raises(ValueError):
        merge([a, fd.Input((5,))])
    assert not merge.built
    out = merge([a, L.Dense(4)(a)])  # the same layer object still works once called correctly
    assert fd.Model(a, out).output_shape == (4,)


def test_gradcheck_cli_checks_a_saved_graph_model(rng, tmp_path, capsys):
    from fastdnn.verify import cli

    model = _compiled()
    x, y = _data(rng, 16)
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "graph.fdnn")
    assert cli.main([str(tmp_path / "graph.fdnn")]) == 0
    out = capsys.readouterr().out
    assert "all passed" in out and "shared" in out and "classes" in out
