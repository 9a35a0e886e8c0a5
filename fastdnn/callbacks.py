"""Callbacks: the hooks ``fit`` calls, the History it returns, and the progress display.

The protocol is Keras's: ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)``,
``on_train_batch_begin/end(batch, logs)`` (which default to ``on_batch_begin/end``). ``logs`` holds
``loss``, each metric and, at epoch end, the ``val_`` entries. Setting ``model.stop_training = True``
in any hook ends training after the current batch.
"""

import sys
import time

from fastdnn import validation


class Callback:
    """Base class; override the hooks you need. ``self.model`` and ``self.params`` are set by ``fit``."""

    #: Writers (checkpoints, logs) run only in the first of several data-parallel processes.
    root_only = False

    def __init__(self):
        self.model = None
        self.params = {}

    @property
    def needs_batch_logs(self):
        """Whether this callback reads per-batch logs (``fit`` skips building them otherwise)."""
        return _overrides_batch_hooks(self)

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)


class CallbackList:
    """Calls each hook on every callback, in order."""

    def __init__(self, callbacks, model, params):
        self.callbacks = checked(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)
            callback.set_params(params)
        # Only hooks someone overrides run per batch: keeps the per-step overhead at zero otherwise.
        self._batch_hooks = [c for c in self.callbacks if _overrides_batch_hooks(c)]

    def on_train_begin(self, logs=None):
        for callback in self.callbacks:
            callback.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for callback in self.callbacks:
            callback.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    @property
    def wants_batch_logs(self):
        return any(c.needs_batch_logs for c in self._batch_hooks)

    def on_train_batch_begin(self, batch, logs=None):
        for callback in self._batch_hooks:
            callback.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for callback in self._batch_hooks:
            callback.on_train_batch_end(batch, logs)


def checked(callbacks):
    """The user's ``callbacks`` argument as a list, every entry a `Callback`."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks: expected a list of Callback instances, received {validation.describe(callbacks)}")
    for i, callback in enumerate(callbacks):
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks[{i}]: expected a fastdnn.callbacks.Callback, received {validation.describe(callback)}")
    return list(callbacks)


def _overrides_batch_hooks(callback):
    names = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")
    return any(name in vars(callback) or getattr(type(callback), name) is not getattr(Callback, name) for name in names)


class History(Callback):
    """Records the epoch logs: ``history.history["loss"]``, ``["val_accuracy"]``, ... and ``history.epoch``."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class ProgbarLogger(Callback):
    """Progress output. ``verbose=1``: a live bar per epoch on a terminal (one final line per epoch
    otherwise, so logs are not flooded with carriage returns); ``verbose=2``: one line per epoch.
    """

    #: Seconds between redraws of the live bar.
    interval = 0.05

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self._stream = stream

    @property
    def stream(self):
        return self._stream or sys.stdout

    @property
    def needs_batch_logs(self):
        return self._live()

    def _live(self):
        return self.verbose == 1 and getattr(self.stream, "isatty", lambda: False)()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._last_draw = 0.0
        self._steps = self.params.get("steps")
        self._seen = 0
        epochs = self.params.get("epochs")
        if self.verbose:
            self.stream.write(f"Epoch {epoch + 1}/{epochs}\n")
            self.stream.flush()

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if not self._live():
            return
        now = time.perf_counter()
        if now - self._last_draw >= self.interval or self._seen == self._steps:
            self._last_draw = now
            self.stream.write("\r" + self._line(logs or {}, now, final=False))
            self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        if not self.verbose:
            return
        line = self._line(logs or {}, time.perf_counter(), final=True)
        prefix = "\r" if self._live() else ""
        self.stream.write(prefix + line + "\n")
        self.stream.flush()

    def _line(self, logs, now, final):
        elapsed = now - self._epoch_start
        steps = self._steps or self._seen
        per_step = elapsed / max(self._seen, 1)
        values = " - ".join(f"{key}: {_format(value)}" for key, value in logs.items())
        if self.verbose == 2:
            return f"{steps}/{steps} - {elapsed:.0f}s - {_format_time(per_step)}/step - {values}"
        width = 20
        done = int(width * self._seen / steps) if steps else width
        bar = "━" * done + "─" * (width - done) if _can_encode(self.stream, "━─") else "=" * done + "." * (width - done)
        timing = f"{elapsed:.0f}s" if final else f"ETA {per_step * max(steps - self._seen, 0):.0f}s"
        return f"{self._seen}/{steps} {bar} {timing} {_format_time(per_step)}/step - {values}"


def _format(value):
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.4e}"


def _format_time(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"


def _can_encode(stream, text):
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


# -- monitoring a logged value ----------------------------------------------------------------------------


class _Monitor:
    """Which logged value to watch and which direction is better (Keras's ``mode="auto"`` rule:
    accuracies and AUC are maximised, everything else minimised).
    """

    def __init__(self, monitor, mode, min_delta):
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor: expected the name of a logged value such as 'val_loss', received {validation.describe(monitor)}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', received {mode!r}")
        self.monitor = monitor
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("auc") or "precision" in monitor or "recall" in monitor) else "min"
        self.mode = mode
        self.min_delta = abs(validation.real_number(min_delta, "min_delta"))

    def initial(self):
        return -float("inf") if self.mode == "max" else float("inf")

    def improved(self, current, best):
        if self.mode == "max":
            return current - self.min_delta > best
        return current + self.min_delta < best

    def value(self, logs, owner):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"monitor: {owner} watches {self.monitor!r}, which is not logged; available: {', '.join(sorted(logs)) or 'none'}"
                + ("; val_ values need validation_data or validation_split" if self.monitor.startswith("val_") else "")
            )
        return float(logs[self.monitor])


def _non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, received {value!r}")
    return value


class EarlyStopping(Callback):
    """Stop when a monitored value has stopped improving.

    Parameters
    ----------
    monitor : str
        Logged value to watch (``"val_loss"``, ``"val_accuracy"``, ``"loss"``...).
    min_delta : float
        Smallest change that counts as an improvement.
    patience : int
        Epochs without improvement before stopping.
    mode : "auto", "min" or "max"
    baseline : float, optional
        Training stops if the value does not beat it within ``patience`` epochs.
    restore_best_weights : bool
        Put back the weights of the best epoch when training ends, whether or not it stopped early.
    start_from_epoch : int
        Epochs to wait before watching (warm-up).
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self._watch = _Monitor(monitor, mode, min_delta)
        self.patience = _non_negative_int(patience, "patience")
        self.verbose = verbose
        self.baseline = None if baseline is None else validation.real_number(baseline, "baseline")
        self.restore_best_weights = validation.boolean(restore_best_weights, "restore_best_weights")
        self.start_from_epoch = _non_negative_int(start_from_epoch, "start_from_epoch")

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._watch.initial()
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._watch.value(logs, "EarlyStopping")
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._watch.improved(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._watch.improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring the weights of the best epoch ({self.best_epoch + 1})")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or only its weights) after every epoch, or only when the monitored value improves.

    ``filepath`` may hold format fields filled from the epoch (counted from 1) and the logs, e.g.
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.fdnn"``. Every write is atomic: a crash mid-save leaves the
    previous file intact.
    """

    root_only = True

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        if not isinstance(filepath, (str, bytes)) and not hasattr(filepath, "__fspath__"):
            raise TypeError(f"filepath: expected a path, received {validation.describe(filepath)}")
        if save_freq != "epoch":
            raise ValueError(f"save_freq: only 'epoch' is supported, received {save_freq!r}")
        self.filepath = str(filepath)
        self._watch = _Monitor(monitor, mode, 0)
        self.verbose = verbose
        self.save_best_only = validation.boolean(save_best_only, "save_best_only")
        self.save_weights_only = validation.boolean(save_weights_only, "save_weights_only")
        self.best = self._watch.initial() if initial_value_threshold is None else validation.real_number(
            initial_value_threshold, "initial_value_threshold"
        )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = self._watch.value(logs, "ModelCheckpoint")
            if not self._watch.improved(current, self.best):
                return
            self.best = current
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"filepath: cannot fill {self.filepath!r} from epoch and logs {sorted(logs)}: {error}") from None
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved to {path}")


class TerminateOnNaN(Callback):
    """Stop training, without an error, when the loss becomes NaN or infinite.

    The step that produced the non-finite loss is not applied, so no NaN reaches the weights (and if
    an update itself overflowed, the weights of the start of that epoch are put back). Without this
    callback, ``fit`` raises ``TrainingDivergedError`` in that situation instead.
    """

    def on_nonfinite_loss(self, epoch, batch, loss):
        print(f"Epoch {epoch + 1}, batch {batch}: invalid loss ({loss}), terminating training")
        self.model.stop_training = True


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when the monitored value stops improving.

    After ``patience`` epochs without an improvement larger than ``min_delta``, ``lr = max(lr * factor,
    min_lr)``, then ``cooldown`` epochs pass before counting again. ``logs["learning_rate"]`` records it.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__()
        self._watch = _Monitor(monitor, mode, min_delta)
        self.factor = validation.real_number(factor, "factor", low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        self.patience = _non_negative_int(patience, "patience")
        self.verbose = verbose
        self.cooldown = _non_negative_int(cooldown, "cooldown")
        self.min_lr = validation.real_number(min_lr, "min_lr", low=0.0)

    def on_train_begin(self, logs=None):
        self.best = self._watch.initial()
        self.wait = 0
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        current = self._watch.value(logs, "ReduceLROnPlateau")
        optimizer = self.model.optimizer
        logs["learning_rate"] = optimizer.learning_rate
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._watch.improved(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience and optimizer.learning_rate > self.min_lr:
            optimizer.learning_rate = max(optimizer.learning_rate * self.factor, self.min_lr)
            if self.verbose:
                print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {optimizer.learning_rate:.4g}")
            self.cooldown_counter = self.cooldown
            self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule(epoch, lr) -> new lr``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule: expected a function (epoch, lr) -> lr, received {validation.describe(schedule)}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        value = self.schedule(epoch, optimizer.learning_rate)
        try:
            optimizer.learning_rate = value
        except (TypeError, ValueError) as error:
            raise type(error)(f"schedule: returned an invalid learning rate for epoch {epoch}: {error}") from None
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {optimizer.learning_rate:.4g}")

    def on_epoch_end(self, epoch, logs=None):
        logs["learning_rate"] = self.model.optimizer.learning_rate


class CSVLogger(Callback):
    """Append one CSV row per epoch (``epoch`` then the logs in sorted order) to ``filename``.

    Each row is flushed as it is written, so a crash loses nothing that finished.
    """

    root_only = True

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        if not isinstance(filename, (str, bytes)) and not hasattr(filename, "__fspath__"):
            raise TypeError(f"filename: expected a path, received {validation.describe(filename)}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator: expected one character, received {separator!r}")
        self.filename = filename
        self.separator = separator
        self.append = validation.boolean(append, "append")
        self._file = None
        self._keys = None

    def on_train_begin(self, logs=None):
        import os

        has_rows = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", encoding="utf-8", newline="")
        self._keys = None
        self._header_written = has_rows

    def on_epoch_end(self, epoch, logs=None):
        import csv

        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
        writer = csv.writer(self._file, delimiter=self.separator)
        if not self._header_written:
            writer.writerow(["epoch", *self._keys])
            self._header_written = True
        writer.writerow([epoch, *(logs.get(key, "NA") for key in self._keys)])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    _HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end")

    def __init__(self, **hooks):
        super().__init__()
        for name, function in hooks.items():
            if name not in self._HOOKS:
                raise TypeError(f"{name}: not a callback hook; expected one of {', '.join(self._HOOKS)}")
            if function is not None and not callable(function):
                raise TypeError(f"{name}: expected a function, received {validation.describe(function)}")
            if function is not None:
                setattr(self, name, function)
