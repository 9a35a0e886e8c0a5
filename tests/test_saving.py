import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import fastdnn as fd


def _data(rng, n=96):
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] - x[:, 2] > 0).astype(int) + (x[:, 1] > 1).astype(int)
    return x, y


def _model(metrics=("accuracy",)):
    model = fd.Sequential([fd.layers.Dense(7, activation="relu", input_shape=(5,)), fd.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=fd.optimizers.Adam(learning_rate=0.01, amsgrad=True), loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model


def test_round_trip_keeps_everything(rng, tmp_path):
    x, y = _data(rng)
    model = _model(metrics=["accuracy", fd.metrics.Precision(thresholds=0.4)])
    model.fit(x, y, epochs=3, verbose=0)
    path = tmp_path / "model.fdnn"
    model.save(path)
    loaded = fd.load_model(path)
    assert loaded.get_config() == model.get_config()
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for name, buffer in model.optimizer.state.items():
        np.testing.assert_array_equal(loaded.optimizer.state[name], buffer)
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    assert loaded.metrics[1].thresholds == 0.4


def test_resume_equals_training_straight_through(rng, tmp_path):
    """10 epochs, save, a NEW process loads and trains 10 more == 20 epochs in one go, weight for weight."""
    x, y = _data(rng)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    fd.set_seed(11)
    straight = _model()
    straight.fit(x, y, batch_size=16, epochs=20, verbose=0)

    fd.set_seed(11)
    first_half = _model()
    first_half.fit(x, y, batch_size=16, epochs=10, verbose=0)
    first_half.save(tmp_path / "half.fdnn")
    script = textwrap.dedent(
        f"""
        import numpy as np, fastdnn as fd
        np.random.default_rng().random(100)  # a fresh process: nothing about its state is assumed
        model = fd.load_model({str(tmp_path / "half.fdnn")!r})
        x, y = np.load({str(tmp_path / "x.npy")!r}), np.load({str(tmp_path / "y.npy")!r})
        model.fit(x, y, batch_size=16, epochs=20, initial_epoch=10, verbose=0)
        model.save_weights({str(tmp_path / "resumed.weights")!r})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    resumed = _model()
    resumed.load_weights(tmp_path / "resumed.weights")
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_and_load_weights(rng, tmp_path):
    x, y = _data(rng)
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    model.save_weights(tmp_path / "w.bin")
    other = _model()
    other.load_weights(tmp_path / "w.bin")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    with pytest.raises(fd.FileFormatError, match="holds only weights"):
        fd.load_model(tmp_path / "w.bin")


def test_a_crash_mid_save_leaves_the_previous_file_intact(rng, tmp_path, monkeypatch):
    x, y = _data(rng)
    model = _model()
    path = tmp_path / "model.fdnn"
    model.save(path)
    before = path.read_bytes()
    model.fit(x, y, epochs=1, verbose=0)
    calls = {"n": 0}
    real = np.lib.format.write_array

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", crash_on_third)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.fdnn"]  # no partial file left behind
    fd.load_model(path)


def _rewrite(path, target, edit):
    """Copy the zip at ``path`` to ``target``, passing each entry's bytes through ``edit(name, data)``."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            out.writestr(info.filename, edit(info.filename, source.read(info.filename)))


def test_damaged_files_give_clear_errors(rng, tmp_path):
    model = _model()
    path = tmp_path / "model.fdnn"
    model.save(path)
    data = path.read_bytes()

    truncated = tmp_path / "truncated.fdnn"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(fd.FileFormatError, match="not a fastdnn file, or truncated"):
        fd.load_model(truncated)

    # flip bytes inside the first weight array: the zip's CRC no longer matches
    corrupted = tmp_path / "corrupted.fdnn"
    raw = bytearray(data)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("variables/0.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    raw[start : start + 8] = b"\xff" * 8
    corrupted.write_bytes(bytes(raw))
    with pytest.raises(fd.FileFormatError, match=r"entry 'variables/0.npy' is damaged.*CRC"):
        fd.load_model(corrupted)

    not_zip = tmp_path / "notes.fdnn"
    not_zip.write_text("hello")
    with pytest.raises(fd.FileFormatError, match="not a fastdnn file"):
        fd.load_model(not_zip)

    foreign = tmp_path / "foreign.fdnn"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("data.txt", "x")
    with pytest.raises(fd.FileFormatError, match="not a fastdnn save"):
        fd.load_model(foreign)

    future = tmp_path / "future.fdnn"
    _rewrite(path, future, lambda name, raw: raw.replace(b'"version": 1', b'"version": 99') if name == "fastdnn.json" else raw)
    with pytest.raises(fd.FileFormatError, match="format version 99"):
        fd.load_model(future)
    with pytest.raises(FileNotFoundError, match="no such file"):
        fd.load_model(tmp_path / "missing.fdnn")


def test_a_file_that_asks_for_pickle_is_refused(tmp_path):
    model = _model()
    path = tmp_path / "model.fdnn"
    model.save(path)

    def with_object_array(name, raw):
        if name != "variables/0.npy":
            return raw
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.array([{"payload": 1}], dtype=object), allow_pickle=True)
        return buffer.getvalue()

    hostile = tmp_path / "hostile.fdnn"
    _rewrite(path, hostile, with_object_array)
    with pytest.raises(fd.FileFormatError, match="asks to unpickle Python objects; refused"):
        fd.load_model(hostile)


def test_weights_that_do_not_fit_are_named(rng, tmp_path):
    model = _model()
    model.save_weights(tmp_path / "w.bin")
    wider = fd.Sequential([fd.layers.Dense(9, activation="relu", input_shape=(5,)), fd.layers.Dense(3, activation="softmax")])
    before = wider.get_weights()
    with pytest.raises(fd.FileFormatError, match=r"weights for dense_\d+\.W have shape \(5, 7\).*expects \(5, 9\)"):
        wider.load_weights(tmp_path / "w.bin")
    deeper = fd.Sequential([fd.layers.Dense(7, input_shape=(5,)), fd.layers.Dense(7), fd.layers.Dense(3)])
    deeper_before = deeper.get_weights()
    with pytest.raises(fd.FileFormatError, match="holds 4 weight arrays, the model has 6"):
        deeper.load_weights(tmp_path / "w.bin")
    # a refused load writes nothing (deeper's first two arrays have the saved shapes)
    for a, b in zip(before + deeper_before, wider.get_weights() + deeper.get_weights()):
        np.testing.assert_array_equal(a, b)

    manifest_edit = tmp_path / "nan.bin"

    def nan_weights(name, raw):
        if name != "variables/1.npy":
            return raw
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.full(7, np.nan, dtype=np.float32))
        return buffer.getvalue()

    _rewrite(tmp_path / "w.bin", manifest_edit, nan_weights)
    target = _model()
    intact = target.get_weights()
    with pytest.raises(fd.FileFormatError, match="not finite"):
        target.load_weights(manifest_edit)
    for a, b in zip(intact, target.get_weights()):  # not even the arrays before the bad one
        np.testing.assert_array_equal(a, b)


def test_saved_file_is_plain_json_and_npy(tmp_path):
    model = _model()
    model.save(tmp_path / "m.fdnn")
    with zipfile.ZipFile(tmp_path / "m.fdnn") as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("fastdnn.json"))
    assert names[0] == "fastdnn.json" and all(n.endswith(".npy") for n in names[1:])
    assert manifest["format"] == "fastdnn" and manifest["compile"]["loss"]["name"] == "sparse_categorical_crossentropy"


def test_gradcheck_cli_checks_a_saved_model(rng, tmp_path):
    model = _model()
    model.fit(*_data(rng), epochs=1, verbose=0)
    model.save(tmp_path / "m.fdnn")
    result = subprocess.run([sys.executable, "-m", "fastdnn.verify", str(tmp_path / "m.fdnn")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "all passed" in result.stdout and "dense" in result.stdout
    (tmp_path / "bad.fdnn").write_text("nope")
    result = subprocess.run([sys.executable, "-m", "fastdnn.verify", str(tmp_path / "bad.fdnn")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "not a fastdnn file" in result.stderr
