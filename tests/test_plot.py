import numpy as np
import pytest

import fastdnn as fd

pytest.importorskip("matplotlib")


def test_history_plot_has_training_and_validation_curves(rng, tmp_path):
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = rng.integers(0, 2, 60)
    model = fd.Sequential([fd.layers.Dense(2, activation="softmax", input_shape=(3,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=4, validation_split=0.25, verbose=0)
    figure = fd.plot.history(history, path=tmp_path / "history.png")
    assert (tmp_path / "history.png").stat().st_size > 1000
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == ["loss", "accuracy"]
    for axis in figure.axes:
        labels = [line.get_label() for line in axis.get_lines()]
        assert labels == ["training", "validation"]
        np.testing.assert_array_equal(axis.get_lines()[0].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(figure.axes[0].get_lines()[1].get_ydata(), history.history["val_loss"])


def test_activation_plot_draws_each_function_and_its_derivative(tmp_path):
    figure = fd.plot.activations(path=tmp_path / "activations.png")
    assert (tmp_path / "activations.png").exists()
    drawn = [axis for axis in figure.axes if axis.get_title()]
    assert len(drawn) == len(fd.activations.registry.names())
    relu = next(axis for axis in drawn if axis.get_title() == "relu")
    x, y = relu.get_lines()[0].get_data()
    np.testing.assert_allclose(y, np.maximum(x, 0), atol=1e-6)
    _, dy = relu.get_lines()[1].get_data()
    np.testing.assert_array_equal(dy, (x > 0).astype(float))


def test_plot_errors():
    with pytest.raises(TypeError, match="history: expected what fit"):
        fd.plot.history([1, 2])
    with pytest.raises(ValueError, match="metrics: \\['auc'\\] not in the history"):
        fd.plot.history({"loss": [1.0]}, metrics=["auc"])
    with pytest.raises(ValueError, match="x_range"):
        fd.plot.activations(x_range=(1, -1))
