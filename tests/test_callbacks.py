import csv

import numpy as np
import pytest

import fastdnn as fd
from fastdnn import callbacks as cb


def _data(rng, n=80):
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return x, y


def _model(optimizer="adam"):
    model = fd.Sequential([fd.layers.Dense(8, activation="tanh", input_shape=(4,)), fd.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Scripted(cb.Callback):
    """Feeds a scripted sequence of values of one log entry (val_loss by default), to drive the monitors exactly."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values = list(values)
        self.key = key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def test_early_stopping_waits_patience_epochs(rng):
    x, y = _data(rng)
    model = _model()
    stopper = cb.EarlyStopping(monitor="val_loss", patience=2)
    history = model.fit(x, y, epochs=20, verbose=0, callbacks=[Scripted([5, 4, 4.5, 4.2, 3, 2, 1] + [0] * 13), stopper])
    assert len(history.epoch) == 4 and stopper.stopped_epoch == 3 and stopper.best == 4


def test_early_stopping_min_delta_mode_and_start_from_epoch(rng):
    x, y = _data(rng)
    stopper = cb.EarlyStopping(monitor="val_loss", min_delta=0.5, patience=1, start_from_epoch=2)
    history = _model().fit(x, y, epochs=10, verbose=0, callbacks=[Scripted([9, 9, 5, 4.8, 4.7, 1, 1, 1, 1, 1]), stopper])
    assert len(history.epoch) == 4  # epochs 0-1 ignored; 4.8 and 4.7 are within min_delta of 5

    # mode "auto" maximizes an accuracy: rising values never stop it, falling ones do
    rising = cb.EarlyStopping(monitor="val_accuracy", patience=1)
    history = _model().fit(x, y, epochs=6, verbose=0, callbacks=[Scripted([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "val_accuracy"), rising])
    assert len(history.epoch) == 6 and rising.stopped_epoch == 0
    falling = cb.EarlyStopping(monitor="val_accuracy", patience=1)
    history = _model().fit(x, y, epochs=6, verbose=0, callbacks=[Scripted([0.6, 0.5, 0.4, 0.3, 0.2, 0.1], "val_accuracy"), falling])
    assert len(history.epoch) == 2 and falling.best == 0.6


def test_restore_best_weights_also_when_training_ends_normally(rng):
    x, y = _data(rng)
    model = _model()
    seen = []
    record = cb.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.get_weights()))
    stopper = cb.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
    model.fit(x, y, epochs=5, verbose=0, callbacks=[Scripted([3, 1, 2, 2.5, 2.7]), record, stopper])
    assert stopper.stopped_epoch == 0  # never triggered
    for restored, best in zip(model.get_weights(), seen[1]):
        np.testing.assert_array_equal(restored, best)


def test_restore_best_weights_when_stopping(rng):
    x, y = _data(rng)
    model = _model()
    seen = []
    record = cb.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.get_weights()))
    stopper = cb.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    model.fit(x, y, epochs=10, verbose=0, callbacks=[Scripted([3, 2, 2.5, 2.7, 0, 0, 0, 0, 0, 0]), record, stopper])
    assert stopper.stopped_epoch == 2
    for restored, best in zip(model.get_weights(), seen[1]):
        np.testing.assert_array_equal(restored, best)


def test_a_monitor_that_is_never_logged_is_a_clear_error(rng):
    x, y = _data(rng)
    with pytest.raises(ValueError, match=r"monitor: EarlyStopping watches 'val_loss', which is not logged; available: accuracy, loss; val_ values need"):
        _model().fit(x, y, epochs=2, verbose=0, callbacks=[cb.EarlyStopping()])


def test_model_checkpoint_saves_every_epoch_or_the_best(rng, tmp_path):
    x, y = _data(rng)
    model = _model()
    every = cb.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}.fdnn"), save_best_only=False)
    best = cb.ModelCheckpoint(str(tmp_path / "best.fdnn"), monitor="val_loss", save_best_only=True)
    weights = cb.ModelCheckpoint(str(tmp_path / "w-{epoch}-{val_loss:.1f}.weights"), save_weights_only=True)
    seen = []
    record = cb.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.get_weights()))
    model.fit(x, y, epochs=4, verbose=0, callbacks=[Scripted([3, 1, 2, 4]), record, every, best, weights])
    assert sorted(p.name for p in tmp_path.glob("ckpt-*")) == [f"ckpt-0{i}.fdnn" for i in range(1, 5)]
    assert (tmp_path / "w-2-1.0.weights").exists()
    restored = fd.load_model(tmp_path / "best.fdnn")
    for a, b in zip(restored.get_weights(), seen[1]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="filepath: cannot fill"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[cb.ModelCheckpoint(str(tmp_path / "{nope}.fdnn"))])


def _diverging(rng):
    """Linear regression with a learning rate far beyond stability: the loss grows until it overflows."""
    x = rng.normal(size=(80, 4)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    model = fd.Sequential([fd.layers.Dense(1, input_shape=(4,))])
    model.compile(optimizer=fd.optimizers.SGD(learning_rate=50.0), loss="mse")
    return model, x, y


def test_terminate_on_nan_stops_before_the_nan_reaches_the_weights(rng, capsys):
    model, x, y = _diverging(rng)
    history = model.fit(x, y, epochs=50, batch_size=8, verbose=0, callbacks=[cb.TerminateOnNaN()])
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert len(history.epoch) < 50
    assert "invalid loss" in capsys.readouterr().out


def test_divergence_without_terminate_on_nan_is_a_clear_error(rng):
    model, x, y = _diverging(rng)
    with pytest.raises(fd.TrainingDivergedError, match=r"learning_rate: training diverged at epoch \d+, batch \d+.*Lower the learning rate \(now 50\)"):
        model.fit(x, y, epochs=50, batch_size=8, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert isinstance(fd.TrainingDivergedError("x"), ValueError)


def test_reduce_lr_on_plateau(rng):
    x, y = _data(rng)
    model = _model(optimizer=fd.optimizers.Adam(learning_rate=0.1))
    reduce = cb.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, cooldown=2, min_lr=0.02)
    history = model.fit(x, y, epochs=7, verbose=0, callbacks=[Scripted([1, 1, 1, 1, 1, 1, 1]), reduce])
    # Keras semantics: reduce at epoch 1; cooldown counts down at 2 and 3, reduce at 3, again at 5 (to
    # the floor); logs carry the rate each epoch ran with
    assert history.history["learning_rate"] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02]
    assert model.optimizer.learning_rate == 0.02


def test_learning_rate_scheduler(rng):
    x, y = _data(rng)
    model = _model(optimizer=fd.optimizers.SGD(learning_rate=1.0))
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[cb.LearningRateScheduler(lambda epoch, lr: lr / 10)])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.01, 0.001])
    with pytest.raises(ValueError, match="schedule: returned an invalid learning rate for epoch 0"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[cb.LearningRateScheduler(lambda epoch, lr: -1.0)])


def test_csv_logger_writes_and_appends(rng, tmp_path):
    x, y = _data(rng)
    path = tmp_path / "log.csv"
    model = _model()
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[cb.CSVLogger(str(path))])
    model.fit(x, y, epochs=3, initial_epoch=2, verbose=0, validation_split=0.25, callbacks=[cb.CSVLogger(str(path), append=True)])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]


def test_lambda_callback_and_stop_training_from_any_hook(rng):
    x, y = _data(rng)
    model = _model()
    events = []

    def stop(epoch, logs):
        events.append(epoch)
        if epoch == 1:
            model.stop_training = True

    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[cb.LambdaCallback(on_epoch_begin=stop)])
    assert events == [0, 1] and len(history.epoch) == 1
    with pytest.raises(TypeError, match="on_epoch_finish: not a callback hook"):
        cb.LambdaCallback(on_epoch_finish=print)


def test_keyboard_interrupt_leaves_a_usable_model_and_the_finished_epochs(rng):
    x, y = _data(rng)
    model = _model()

    class CtrlC(cb.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if model.history.epoch == [0, 1] and batch == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=10, batch_size=8, verbose=0, callbacks=[CtrlC()])
    assert model.history.epoch == [0, 1] and len(model.history.history["loss"]) == 2
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    model.fit(x, y, epochs=1, verbose=0)  # still trainable
    assert model.predict(x).shape == (80, 2)


@pytest.mark.parametrize(
    "factory, error, match",
    [
        (lambda: cb.EarlyStopping(patience=-1), ValueError, "patience: expected a non-negative integer"),
        (lambda: cb.EarlyStopping(mode="up"), ValueError, "mode: expected 'auto', 'min' or 'max'"),
        (lambda: cb.EarlyStopping(monitor=3), TypeError, "monitor: expected the name"),
        (lambda: cb.ReduceLROnPlateau(factor=1.5), ValueError, "factor"),
        (lambda: cb.ModelCheckpoint(3), TypeError, "filepath: expected a path"),
        (lambda: cb.ModelCheckpoint("a.fdnn", save_freq=10), ValueError, "save_freq"),
        (lambda: cb.LearningRateScheduler(0.1), TypeError, "schedule: expected a function"),
        (lambda: cb.CSVLogger("a.csv", separator=";;"), ValueError, "separator"),
    ],
)
def test_callback_arguments_are_validated(factory, error, match):
    with pytest.raises(error, match=match):
        factory()
