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
    return any(getattr(type(callback), name) is not getattr(Callback, name) for name in names)


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
