"""The loop over any graph: ``fit`` / ``evaluate`` / ``predict``, batches, callbacks, strategies.

`Trainer` is the half of `fastdnn.Model` that walks data: it validates the arrays against the
model's inputs and outputs, gathers shuffled batches into reused buffers, calls the engine's
``_loss_and_gradients`` and the optimizer, and reports to callbacks. How work is split between
processes is the model's strategy object (``model._parallel``, see `fastdnn.distributed`); on
``device="cuda"`` a `fastdnn.backend.CudaEngine` runs the epochs.
"""

import math

import numpy as np

from fastdnn import backend, callbacks as callbacks_module
from fastdnn import config, graph, random, threads, validation
from fastdnn.kernels.cpu.data import all_finite, take_rows

_PREDICT_BATCH = 1024  # rows per chunk when batch_size is None: big enough for BLAS, small for memory


class TrainingDivergedError(ValueError):
    """The loss became NaN or infinite during ``fit`` although inputs and targets were finite."""

    #: Every data-parallel process sees the same reduced loss and raises together (see `fastdnn.distributed`).
    raised_on_every_rank = True


def _listed(value):
    return value if isinstance(value, list) else [value]


class Trainer:
    """fit / evaluate / predict over a model's graph (mixed into `fastdnn.Model`)."""

    # -- data ------------------------------------------------------------------------------------

    def _require_compiled(self, method):
        if not self.compiled:
            raise RuntimeError(f"{method}: the model must be compiled first: call model.compile(optimizer=..., loss=...)")

    def _arrays_by_position(self, value, argument, names, what):
        """``value`` (one array, a list, or a dict by name) as a list in the model's order of ``names``."""
        if graph.contains_symbolic(value):
            raise TypeError(
                f"{argument}: received a symbolic tensor (fd.Input or a layer's output), which has no values; "
                f"pass NumPy arrays"
            )
        count = len(names)
        if isinstance(value, dict):
            unknown = [key for key in value if key not in names]
            missing = [name for name in names if name not in value]
            if unknown or missing:
                raise ValueError(f"{argument}: expected arrays for the model's {what} {names}; unknown keys {unknown}, missing {missing}")
            return [value[name] for name in names], [f"{argument}[{name!r}]" for name in names]
        if isinstance(value, (list, tuple)) and count > 1:
            if len(value) != count:
                raise ValueError(f"{argument}: expected {count} arrays (the model's {what} {names}), received {len(value)}")
            return list(value), [f"{argument}[{i}]" for i in range(count)]
        if count > 1:
            raise ValueError(f"{argument}: expected a list or a dict of {count} arrays (the model's {what} {names}), received {validation.describe(value)}")
        if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], np.ndarray):
            value = value[0]
        return [value], [argument]

    def _inputs(self, x, name="x"):
        """Validated float inputs (building a `Sequential` from their shape if needed): one array alone,
        else a list in the model's input order."""
        if not self.built:
            if graph.contains_symbolic(x):
                self._arrays_by_position(x, name, ["input"], "inputs")
            dtype = np.dtype(config.floatx())
            x = self._layers[0].validate_input(x, name, dtype) if self._layers else validation.float_array(x, name, dtype)
            self.build(None if self._input_shape is not None else x.shape[1:])
        arrays, names = self._arrays_by_position(x, name, self.input_names, "inputs")
        checked = []
        for array, argument, reader, tensor in zip(arrays, names, self._input_readers, self.inputs):
            array = reader.validate_input(array, argument, self.dtype)
            if array.shape[1:] != tensor.sample_shape:
                shape = tensor.sample_shape
                raise ValueError(
                    f"{argument}: expected samples of shape {shape} (input of shape (n, "
                    f"{', '.join(map(str, shape))})), received an array of shape {array.shape}"
                )
            checked.append(array)
        if len({a.shape[0] for a in checked}) > 1:
            raise ValueError(f"{name}: every input needs the same number of samples, received {[a.shape[0] for a in checked]}")
        return checked[0] if len(checked) == 1 else checked

    def _data(self, x, y, x_name="x", y_name="y"):
        """Validated inputs and targets (one row per sample, in the losses' kernel form); single arrays
        for a model of one input and output, else lists in the model's order."""
        xs = _listed(self._inputs(x, x_name))
        n = xs[0].shape[0]
        if y is None:
            raise ValueError(f"{y_name}: expected {n} targets (one per sample of {x_name}), received None")
        arrays, names = self._arrays_by_position(y, y_name, self.output_names, "outputs")
        targets = []
        for array, argument, output in zip(arrays, names, self._outputs):
            array = validation.to_array(array, argument)
            if array.ndim == 0 or array.shape[0] != n:
                received = validation.describe(array) if array.ndim == 0 else array.shape[0]
                raise ValueError(f"{argument}: expected {n} targets (one per sample of {x_name}), received {received}")
            targets.append(output.loss.prepare_targets(array, output.shape, n, self.dtype, name=argument).reshape(n, -1))
        return self._unlisted(xs), self._unlisted(targets)

    def _kernel_targets(self, rows):
        """Targets gathered per sample in the form each output's loss kernel takes."""
        return self._unlisted([_kernel_form(output, t) for t, output in zip(_listed(rows), self._outputs)])

    # -- training --------------------------------------------------------------------------------

    def fit(
        self,
        x,
        y,
        batch_size=32,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        initial_epoch=0,
    ):
        """Train for ``epochs`` passes over ``(x, y)``; returns a `History`.

        Parameters
        ----------
        x : array of shape (n, ...), or a list / dict by input name of them
            The inputs.
        y : array, or a list / dict by output name of them
            The targets: integer class labels for sparse crossentropy, else shaped like the output.
        batch_size : int
            Samples per gradient step; ``len(x)`` gives full-batch gradient descent.
        epochs : int
            Index of the last epoch (training runs from ``initial_epoch``).
        verbose : "auto", 0, 1 or 2
            0 silent; 1 progress bar (one line per epoch when not a terminal); 2 one line per epoch.
        callbacks : list of Callback
        validation_split : float in [0, 1)
            Fraction of the data, taken from the end before shuffling, held out for validation.
        validation_data : (x_val, y_val), optional
            Overrides ``validation_split``.
        shuffle : bool
            Reshuffle the training samples every epoch.
        initial_epoch : int
            Epoch to start counting from (for resuming).
        """
        self._require_compiled("fit")
        parallel = self._parallel

        def prepare():
            return self._fit_arguments(x, y, batch_size, epochs, verbose, shuffle, initial_epoch, validation_split, validation_data)

        def description(checked):
            # what every data-parallel process must agree on: model, data and arguments
            train, _, val, _, size, count, *_ = checked
            return {
                "model": self.get_config(),
                "loss": [loss.get_config() for loss in self._losses],
                "optimizer": self.optimizer.get_config(),
                "x": _per_array(train, lambda a: [list(a.shape), repr(float(np.sum(a, dtype=np.float64)))]),
                "validation": None if val is None else _per_array(val, lambda a: list(a.shape)),
                "batch_size": size,
                "epochs": count,
            }

        x, targets, x_val, t_val, batch_size, epochs, verbose, shuffle, initial_epoch = parallel.agree("fit", prepare, description)
        if self._packed_layers != tuple(layer for layer in self._layers if layer.trainable):
            self._pack()
        parallel.broadcast_variables(self)
        if not parallel.is_root:
            verbose = 0

        callbacks = callbacks_module.checked(callbacks)
        if not parallel.is_root:
            callbacks = [c for c in callbacks if not c.root_only]  # one writer of checkpoints and logs
        self.history = callbacks_module.History()
        # History last, so that it records what the other callbacks add to the logs (learning_rate).
        callback_list = callbacks + [self.history]
        if verbose:
            callback_list.insert(0, callbacks_module.ProgbarLogger(verbose))
        n = _listed(x)[0].shape[0]
        steps = -(-n // batch_size)
        hooks = callbacks_module.CallbackList(
            callback_list, self, {"epochs": epochs, "steps": steps, "verbose": verbose, "batch_size": batch_size}
        )
        self.stop_training = False
        terminate_on_nan = [c for c in callbacks if isinstance(c, callbacks_module.TerminateOnNaN)]
        snapshot = _Snapshot(self)
        hooks.on_train_begin()
        try:
            parallel.guard(
                lambda: self._epochs(x, targets, x_val, t_val, batch_size, epochs, shuffle, initial_epoch, steps, hooks, snapshot, terminate_on_nan)
            )
        finally:
            # Also on Ctrl-C: files close, History keeps the finished epochs, the model keeps the
            # weights of its last completed step.
            if self._cuda is not None:
                self._cuda.release_data()
            hooks.on_train_end()
        return self.history

    def _fit_arguments(self, x, y, batch_size, epochs, verbose, shuffle, initial_epoch, validation_split, validation_data):
        """Every check of `fit`'s arguments, before anything runs; returns them in kernel form."""
        batch_size = validation.positive_int(batch_size, "batch_size")
        epochs = validation.positive_int(epochs, "epochs")
        verbose = _verbosity(verbose)
        shuffle = validation.boolean(shuffle, "shuffle")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) or not 0 <= initial_epoch < epochs:
            raise ValueError(f"initial_epoch: expected an integer in [0, epochs={epochs}), received {initial_epoch!r}")
        validation_split = validation.real_number(validation_split, "validation_split", low=0.0, high=1.0, high_inclusive=False)
        x, targets = self._data(x, y)
        if validation_data is not None:
            x_val, t_val = self._validation_data(validation_data)
        elif validation_split > 0:
            n = _listed(x)[0].shape[0]
            split = int(n * (1.0 - validation_split))
            if split < 1 or split >= n:
                raise ValueError(f"validation_split: {validation_split} of {n} samples leaves an empty training or validation set")
            x, x_val = self._unlisted([a[:split] for a in _listed(x)]), self._unlisted([a[split:] for a in _listed(x)])
            targets, t_val = self._unlisted([t[:split] for t in _listed(targets)]), self._unlisted([t[split:] for t in _listed(targets)])
        else:
            x_val = t_val = None
        return x, targets, x_val, t_val, batch_size, epochs, verbose, shuffle, int(initial_epoch)

    def _epochs(self, x, targets, x_val, t_val, batch_size, epochs, shuffle, initial_epoch, steps, hooks, snapshot, terminate_on_nan):
        for epoch in range(initial_epoch, epochs):
            hooks.on_epoch_begin(epoch)
            if self.stop_training:
                break
            snapshot.take()
            logs, failure = self._train_epoch(x, targets, batch_size, shuffle, hooks)
            if failure is None and not all_finite(self._store.params):
                failure = (steps - 1, None)  # an update overflowed although every loss was finite
            if failure is not None:
                self._diverged(epoch, *failure, snapshot, terminate_on_nan)
                break
            if x_val is not None and not self.stop_training:
                val_logs = self._evaluate_arrays(x_val, t_val, _PREDICT_BATCH, self._parallel)
                logs.update({f"val_{key}": value for key, value in val_logs.items()})
            hooks.on_epoch_end(epoch, logs)
            if self.stop_training:
                break

    def _diverged(self, epoch, batch, loss_value, snapshot, terminate_on_nan):
        """The loss went non-finite: keep finite weights (restoring the epoch's start if an update
        overflowed), then stop quietly for TerminateOnNaN or raise."""
        restored = not all_finite(self._store.params)
        if restored:
            snapshot.restore()
        for callback in terminate_on_nan:
            callback.on_nonfinite_loss(epoch, batch, loss_value)
        if terminate_on_nan:
            self.stop_training = True
            return
        kept = "were put back to the start of that epoch" if restored else "are those of the last finite step"
        what = "the weights overflowed" if loss_value is None else f"the loss became {loss_value}"
        raise TrainingDivergedError(
            f"learning_rate: training diverged at epoch {epoch + 1}, batch {batch}: {what} "
            f"although inputs and targets are finite. The weights {kept}. Lower the learning rate "
            f"(now {self.optimizer.learning_rate:g}), clip gradients (clipnorm=...), or pass "
            f"callbacks=[TerminateOnNaN()] to stop without an error."
        )

    def _validation_data(self, validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError(f"validation_data: expected a tuple (x_val, y_val), received {validation.describe(validation_data)}")
        return self._data(validation_data[0], validation_data[1], "validation_data[0]", "validation_data[1]")

    def _train_epoch(self, x, targets, batch_size, shuffle, hooks):
        """One pass over the data. Returns ``(logs, failure)``; ``failure`` is ``(batch, loss)`` when a
        batch's loss was not finite (that step is not applied), else None.

        Data parallel, each global batch ``[start, stop)`` is split and this process runs its shard.
        """
        if self._device == "cuda":
            return backend.engine_for(self).train_epoch(x, targets, batch_size, shuffle, hooks)
        parallel = self._parallel
        xs, ts = _listed(x), _listed(targets)
        n = xs[0].shape[0]
        order = parallel.broadcast_order(random.generator().permutation(n)) if shuffle else None
        rows = min(batch_size, n)
        flat_xs = [a.reshape(n, -1) for a in xs]
        x_buffers = [self._pool.get(("x", i), (rows, a.shape[1]), a.dtype) for i, a in enumerate(flat_xs)]
        t_buffers = [self._pool.get(("t", k), (rows, t.shape[1]), t.dtype) for k, t in enumerate(ts)]
        for metric in self.metrics:
            metric.reset_state()
        multiple = len(ts) > 1
        output_sums = np.zeros(len(ts))
        loss_sum = 0.0
        seen = 0
        batch_logs = hooks.wants_batch_logs
        logs = {}
        for batch, start in enumerate(range(0, n, batch_size)):
            stop = min(start + batch_size, n)
            lo, hi = parallel.shard(start, stop)
            if order is None:
                xb, tb = [a[lo:hi] for a in flat_xs], [t[lo:hi] for t in ts]
            else:
                xb, tb = [b[: hi - lo] for b in x_buffers], [b[: hi - lo] for b in t_buffers]
                for source, buffer in zip(flat_xs, xb):
                    take_rows(source, order[lo:hi], buffer)
                for source, buffer in zip(ts, tb):
                    take_rows(source, order[lo:hi], buffer)
            hooks.on_train_batch_begin(batch)
            shaped = [b.reshape(hi - lo, *a.shape[1:]) for b, a in zip(xb, xs)]
            loss_value = self._train_step(self._unlisted(shaped), self._kernel_targets(self._unlisted(tb)), stop - start)
            threads.training_step(self)  # times steps to choose the thread count (fastdnn.threads)
            if not math.isfinite(loss_value):
                return self._logs(loss_sum / max(seen, 1), output_sums / max(seen, 1)), (batch, loss_value)
            loss_sum += loss_value * (stop - start)
            if multiple and hi > lo:
                output_sums += np.asarray(self._output_losses) * (hi - lo)
            seen += stop - start
            if batch_logs:
                logs = self._logs(loss_sum / seen, output_sums / seen)
            hooks.on_train_batch_end(batch, logs)
            if self.stop_training:
                break
        output_sums = np.asarray(self._reduce_metrics(list(output_sums)))
        return self._logs(loss_sum / max(seen, 1), output_sums / max(seen, 1)), None

    def _reduce_metrics(self, totals=()):
        """Sum the metrics' counts (and ``totals``) over data-parallel processes; returns the totals."""
        if self._parallel.size == 1:
            return list(totals)
        counts = [metric.counts() for metric in self.metrics]
        summed = self._parallel.reduce_sums(np.concatenate([np.asarray(totals, dtype=np.float64), *counts]))
        position = len(totals)
        for metric, own in zip(self.metrics, counts):
            metric.set_counts(summed[position : position + own.size])
            position += own.size
        return list(summed[: len(totals)])

    def _logs(self, loss_value, output_losses=None):
        """The logs of a pass, keyed as Keras keys them (`Model._log_names`)."""
        logs = {"loss": float(loss_value)}
        if len(self._outputs) == 1:
            for metric in self._outputs[0].metrics:
                logs[metric.name] = float(metric.result())
            return logs
        for output, value in zip(self._outputs, output_losses):
            logs[f"{output.name}_loss"] = float(value)
        for output in self._outputs:
            for metric in output.metrics:
                logs[f"{output.name}_{metric.name}"] = float(metric.result())
        return logs

    def _train_step(self, xb, tb, n_global=None):
        """Forward, loss, backward and one optimizer step on a batch; returns the batch's mean loss.

        ``n_global`` is the size of the global batch when ``xb`` is this process's shard of it.
        A non-finite loss skips the step, so that its NaN never reaches the weights.
        """
        n_local = _listed(xb)[0].shape[0]
        n_global = n_local if n_global is None else n_global
        parallel = self._parallel
        if n_local:
            loss_value, y_pred = self._loss_and_gradients(xb, tb, parallel.share(n_local, n_global))
        else:  # more processes than rows in this batch: contribute nothing
            loss_value, y_pred = 0.0, None
            self._output_losses = [0.0] * len(self._outputs)
            self._store.grads[:] = 0
        loss_value = parallel.reduce_step(self._store, loss_value, n_local, n_global)
        if not math.isfinite(loss_value):
            return loss_value
        self.optimizer.step(self._store.params, self._store.grads, self._store.offsets)
        if n_local and self.metrics:
            for output, predictions, targets in zip(self._outputs, _listed(y_pred), _listed(tb)):
                for metric in output.metrics:
                    metric.update(predictions, targets)
        return loss_value

    # -- inference -------------------------------------------------------------------------------

    def _batch_size_or_default(self, batch_size):
        return _PREDICT_BATCH if batch_size is None else validation.positive_int(batch_size, "batch_size")

    def predict(self, x, batch_size=None):
        """Outputs for ``x``, computed in chunks of ``batch_size`` rows (1024 when None): one array, or
        a list (a dict, for outputs given by name) for several outputs."""
        batch_size = self._batch_size_or_default(batch_size)
        xs = _listed(self._inputs(x))
        if self._device == "cuda":
            return backend.engine_for(self).predict(self._unlisted(xs), batch_size)
        n = xs[0].shape[0]
        results = [np.empty((n, *output.shape), dtype=self.dtype) for output in self._outputs]
        flats = [result.reshape(n, -1) for result in results]
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            values = self._run_forward([a[start:stop] for a in xs], training=False)
            for flat, output in zip(flats, self._outputs):
                flat[start:stop] = values[output.slot].reshape(stop - start, -1)
        return self._unlisted(results, self._output_keys)

    def evaluate(self, x, y, batch_size=None, verbose=0, return_dict=False):
        """Loss and metrics over ``(x, y)``: ``loss`` alone, ``[loss, ...]`` in `metrics_names` order, or a dict with ``return_dict``."""
        self._require_compiled("evaluate")
        batch_size = self._batch_size_or_default(batch_size)
        verbose = _verbosity(verbose)
        x, targets = self._data(x, y)
        logs = self._evaluate_arrays(x, targets, batch_size)
        if verbose:
            print(" - ".join(f"{key}: {value:.4f}" for key, value in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _evaluate_arrays(self, x, targets, batch_size, parallel=None):
        """Loss and metrics over arrays in kernel form; with ``parallel``, over this process's shard,
        then summed over processes (fit's validation)."""
        if self._device == "cuda":
            return backend.engine_for(self).evaluate(x, targets, batch_size)
        for metric in self.metrics:
            metric.reset_state()
        xs, ts = _listed(x), _listed(targets)
        n = xs[0].shape[0]
        lo, hi = (0, n) if parallel is None else parallel.shard(0, n)
        sums = np.zeros(len(self._outputs))
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            values = self._run_forward([a[start:stop] for a in xs], training=False)
            for k, (output, rows) in enumerate(zip(self._outputs, ts)):
                tb = _kernel_form(output, rows[start:stop])
                y_pred = values[output.slot].reshape(-1, output.shape[-1])
                if output.fused:
                    value = output.loss.compute_from_logits(output.producer.logits.reshape(y_pred.shape), tb, y_pred, False)
                else:
                    value = output.loss.compute(y_pred, tb, y_pred, False)
                sums[k] += output.weight * value * (stop - start)
                for metric in output.metrics:
                    metric.update(y_pred, tb)
        if parallel is not None:
            sums = np.asarray(self._reduce_metrics(list(sums)))
        sums /= n
        return self._logs(float(np.sum(sums)), sums)


def _kernel_form(output, rows):
    """Targets gathered per sample, as ``output``'s loss kernel takes them (labels flat, else 2-D)."""
    return rows.reshape(-1) if output.loss.sparse else rows.reshape(-1, output.shape[-1])


def _verbosity(verbose):
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 'auto', 0, 1 or 2, received {verbose!r}")
    return int(verbose)


class _Snapshot:
    """Copies of every trainable parameter, optimizer state buffer and layer state, taken at the start
    of each epoch into buffers allocated once, so that a diverged epoch can be undone.
    """

    def __init__(self, model):
        arrays = [model._store.params, *model.optimizer.state.values()]
        arrays += [value for layer in model.layers for value in layer.state.values()]
        self._pairs = [(array, np.empty_like(array)) for array in arrays]
        self._optimizer = model.optimizer

    def take(self):
        for live, copy in self._pairs:
            np.copyto(copy, live)
        self._iterations = self._optimizer.iterations

    def restore(self):
        for live, copy in self._pairs:
            np.copyto(live, copy)
        self._optimizer.iterations = self._iterations


def _per_array(value, describe):
    """``describe`` of one array, or a list of it over several (a one-input model's error reads as before)."""
    return [describe(a) for a in value] if isinstance(value, list) else describe(value)
