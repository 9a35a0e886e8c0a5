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
from fastdnn import config, device_parallel, distributed, graph, random, threads, validation
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
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
        **kwargs,
    ):
        """Train for ``epochs`` passes over ``(x, y)``; returns a `History`.

        The arguments are Keras 3's, in its order; ``steps_per_epoch`` and ``validation_steps`` (and
        Keras 2's ``max_queue_size``, ``workers``, ``use_multiprocessing``) are refused with the reason.

        Parameters
        ----------
        x : array of shape (n, ...), or a list / dict by input name of them
            The inputs.
        y : array, or a list / dict by output name of them
            The targets: integer class labels for sparse crossentropy, else shaped like the output.
        batch_size : int or None
            Samples per gradient step (None: 32, as in Keras); ``len(x)`` gives full-batch gradient descent.
        epochs : int
            Index of the last epoch (training runs from ``initial_epoch``).
        verbose : "auto", 0, 1 or 2
            0 silent; 1 progress bar (one line per epoch when not a terminal); 2 one line per epoch.
        callbacks : list of Callback
        validation_split : float in [0, 1)
            Fraction of the data, taken from the end before shuffling, held out for validation.
        validation_data : (x_val, y_val) or (x_val, y_val, val_sample_weight), optional
            Overrides ``validation_split``.
        shuffle : bool
            Reshuffle the training samples every epoch.
        class_weight : dict of class index -> float, optional
            Weights each sample's loss by its class's weight (1 for a class not listed), as Keras does:
            a single output of one sample axis (classes from the labels, the one-hot rows' argmax, or
            the rounded 0/1 target of one sigmoid unit). Not together with ``sample_weight``.
        sample_weight : array of shape (n,), or a list / dict by output name of them, optional
            Non-negative weight of each sample's loss. The batch loss is Keras's "sum_over_batch_size":
            ``sum_i w_i loss_i / batch size`` (so weight 2 counts a sample twice). Metrics are not weighted
            (Keras weights only ``weighted_metrics``). One array weights every output.
        initial_epoch : int
            Epoch to start counting from (for resuming).
        steps_per_epoch, validation_steps : None
            Refused: an epoch is one pass over the arrays (slice them to train on fewer rows).
        validation_batch_size : int, optional
            Rows per batch of the validation pass (``batch_size`` when None).
        validation_freq : int
            Validate after every ``validation_freq``-th epoch (Keras's meaning: epochs ``k``, ``2k``, ...).
        """
        _refuse_keras_arguments("fit", kwargs, steps_per_epoch=steps_per_epoch, validation_steps=validation_steps)
        self._require_compiled("fit")
        self._refuse_weights_on_device("fit", sample_weight, class_weight, validation_data)
        parallel = self._parallel

        def prepare():
            return self._fit_arguments(
                x, y, batch_size, epochs, verbose, shuffle, initial_epoch, validation_split, validation_data,
                sample_weight, class_weight, validation_batch_size, validation_freq,
            )

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
                "sample_weight": None if checked[9] is None else [repr(float(np.sum(w))) for w in checked[9]],
                "device": self._device,
            }

        checked = parallel.agree("fit", prepare, description)
        x, targets, x_val, t_val, batch_size, epochs, verbose, shuffle, initial_epoch, weights, w_val, validation = checked
        if self._device == "cuda" and parallel.size > 1:
            device_parallel.bind(parallel)  # one GPU per rank, or the same error on every rank
        if self._packed_layers != tuple(layer for layer in self._layers if layer.trainable):
            self._pack()
        for layer in self._layers:  # a random stream without a key draws it now, before rank 0's is broadcast
            if getattr(layer, "random_stream", None) is not None:
                layer.random_stream.ensure_key()
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
        self._give_layers_the_shard(distributed.Shard(parallel))
        hooks.on_train_begin()
        try:
            parallel.guard(
                lambda: self._epochs(
                    x, targets, weights, (x_val, t_val, w_val, *validation), batch_size, epochs, shuffle, initial_epoch, steps,
                    hooks, snapshot, terminate_on_nan,
                )
            )
        finally:
            # Also on Ctrl-C: files close, History keeps the finished epochs, the model keeps the
            # weights of its last completed step.
            if self._cuda is not None:
                self._cuda.release_data()
            self._give_layers_the_shard(None)
            hooks.on_train_end()
        return self.history

    def _give_layers_the_shard(self, shard):
        """Hand ``shard`` (`fastdnn.distributed.Shard`; None: a one-process one) to the layers that
        depend on the whole batch (those with a ``shard`` attribute): they do not know the model."""
        self._shard = shard
        for layer in self._layers:
            if getattr(layer, "shard", None) is not None:
                layer.shard = distributed.Shard() if shard is None else shard

    def _fit_arguments(
        self, x, y, batch_size, epochs, verbose, shuffle, initial_epoch, validation_split, validation_data,
        sample_weight=None, class_weight=None, validation_batch_size=None, validation_freq=1,
    ):
        """Every check of `fit`'s arguments, before anything runs; returns them in kernel form."""
        batch_size = 32 if batch_size is None else validation.positive_int(batch_size, "batch_size")  # Keras's default
        validation_batch_size = batch_size if validation_batch_size is None else validation.positive_int(validation_batch_size, "validation_batch_size")
        validation_freq = validation.positive_int(validation_freq, "validation_freq")
        epochs = validation.positive_int(epochs, "epochs")
        verbose = _verbosity(verbose)
        shuffle = validation.boolean(shuffle, "shuffle")
        if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) or not 0 <= initial_epoch < epochs:
            raise ValueError(f"initial_epoch: expected an integer in [0, epochs={epochs}), received {initial_epoch!r}")
        validation_split = validation.real_number(validation_split, "validation_split", low=0.0, high=1.0, high_inclusive=False)
        x, targets = self._data(x, y)
        n = _listed(x)[0].shape[0]
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError("class_weight: cannot be used together with sample_weight (as in Keras); multiply the class weights into sample_weight instead")
            weights = self._class_weights(class_weight, targets)
        else:
            weights = self._sample_weights(sample_weight, n)
        w_val = None
        if validation_data is not None:
            x_val, t_val, w_val = self._validation_data(validation_data)
        elif validation_split > 0:
            split = int(n * (1.0 - validation_split))
            if split < 1 or split >= n:
                raise ValueError(f"validation_split: {validation_split} of {n} samples leaves an empty training or validation set")

            def halves(arrays):
                return self._unlisted([a[:split] for a in _listed(arrays)]), self._unlisted([a[split:] for a in _listed(arrays)])

            x, x_val = halves(x)
            targets, t_val = halves(targets)
            if weights is not None:  # Keras holds out the weights of the held-out rows with them
                weights, w_val = [w[:split] for w in weights], [w[split:] for w in weights]
        else:
            x_val = t_val = None
        validation_settings = (validation_batch_size, validation_freq)
        return x, targets, x_val, t_val, batch_size, epochs, verbose, shuffle, int(initial_epoch), weights, w_val, validation_settings

    def _sample_weights(self, sample_weight, n, argument="sample_weight"):
        """Per output, a float64 array of ``n`` non-negative weights (None: unweighted); one array
        weights every output, a list or dict gives each output its own."""
        if sample_weight is None:
            return None
        count = len(self._outputs)
        if count > 1 and isinstance(sample_weight, (list, tuple, dict)):
            arrays, names = self._arrays_by_position(sample_weight, argument, self.output_names, "outputs")
        else:
            arrays, names = [sample_weight] * count, [argument] * count
        weights = []
        for array, name in zip(arrays, names):
            array = validation.float_array(array, name, np.float64)
            if array.ndim == 2 and array.shape[1] == 1:
                array = array.reshape(-1)
            if array.shape != (n,):
                raise ValueError(f"{name}: expected one weight per sample, an array of shape ({n},), received an array of shape {array.shape}")
            if np.any(array < 0):
                raise ValueError(f"{name}: expected non-negative weights, received {float(array.min())} at index {int(np.argmin(array))}")
            weights.append(array)
        return weights

    def _class_weights(self, class_weight, targets):
        """The sample weights of ``class_weight`` (Keras's ``class_weight_to_sample_weights``)."""
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight: expected a dict of class index -> weight, received {validation.describe(class_weight)}")
        if len(self._outputs) != 1:
            raise ValueError(f"class_weight: only for a model with one output (as in Keras); this model has outputs {self.output_names}; pass sample_weight per output instead")
        output = self._outputs[0]
        if len(output.shape) != 1:
            raise ValueError(f"class_weight: only for outputs of one axis per sample (as in Keras); the output has samples of shape {output.shape}")
        classes = max(output.width, 2)
        table = np.ones(classes)
        for key, value in class_weight.items():
            if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < classes:
                raise ValueError(f"class_weight: expected class indices in [0, {classes}) (the output's classes), received key {key!r}")
            table[int(key)] = validation.real_number(value, f"class_weight[{key!r}]", low=0.0)
        if output.loss.sparse:
            labels = targets
        elif output.width > 1:
            labels = np.argmax(targets, axis=1)
        else:
            labels = np.clip(np.round(targets.reshape(-1)), 0, 1).astype(np.int64)
        return [table[labels]]

    def _epochs(self, x, targets, weights, validation_set, batch_size, epochs, shuffle, initial_epoch, steps, hooks, snapshot, terminate_on_nan):
        x_val, t_val, w_val, validation_batch_size, validation_freq = validation_set
        for epoch in range(initial_epoch, epochs):
            hooks.on_epoch_begin(epoch)
            if self.stop_training:
                break
            snapshot.take()
            logs, failure = self._train_epoch(x, targets, batch_size, shuffle, hooks, weights)
            if failure is None and not all_finite(self._store.params):
                failure = (steps - 1, None)  # an update overflowed although every loss was finite
            if failure is not None:
                self._diverged(epoch, *failure, snapshot, terminate_on_nan)
                break
            if x_val is not None and not self.stop_training and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_arrays(x_val, t_val, validation_batch_size, self._parallel, w_val)
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
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError(f"validation_data: expected a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight), received {validation.describe(validation_data)}")
        x_val, t_val = self._data(validation_data[0], validation_data[1], "validation_data[0]", "validation_data[1]")
        weights = None
        if len(validation_data) == 3:
            weights = self._sample_weights(validation_data[2], _listed(x_val)[0].shape[0], "validation_data[2]")
        return x_val, t_val, weights

    def _refuse_weights_on_device(self, method, sample_weight, class_weight=None, validation_data=None):
        """The CUDA engine's loss kernels average unweighted rows: weights are refused there by name."""
        if self._device != "cuda":
            return
        given = [name for name, value in (("sample_weight", sample_weight), ("class_weight", class_weight)) if value is not None]
        if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3 and validation_data[2] is not None:
            given.append("validation_data[2]")
        if given:
            raise ValueError(
                f"{given[0]}: {method} with weighted samples is not supported on device='cuda' (its loss kernels average "
                f"unweighted samples); compile with device='cpu' to train with {', '.join(given)}"
            )

    def _train_epoch(self, x, targets, batch_size, shuffle, hooks, weights=None):
        """One pass over the data. Returns ``(logs, failure)``; ``failure`` is ``(batch, loss)`` when a
        batch's loss was not finite (that step is not applied), else None.

        Data parallel, each global batch ``[start, stop)`` is split and this process runs its shard.
        """
        if self._device == "cuda":
            return backend.engine_for(self).train_epoch(x, targets, batch_size, shuffle, hooks)
        threads.training_resumes()  # the time since the last step (callbacks, validation, the caller's own work) is no step
        parallel = self._parallel
        xs, ts = _listed(x), _listed(targets)
        n = xs[0].shape[0]
        order = parallel.broadcast_order(random.generator().permutation(n)) if shuffle else None
        rows = min(batch_size, n)
        flat_xs = [a.reshape(n, -1) for a in xs]
        x_buffers = [self._pool.get(("x", i), (rows, a.shape[1]), a.dtype) for i, a in enumerate(flat_xs)]
        t_buffers = [self._pool.get(("t", k), (rows, t.shape[1]), t.dtype) for k, t in enumerate(ts)]
        # sample weights gathered as one-column arrays, like the targets (None: unweighted)
        ws = None if weights is None else [w.reshape(n, 1) for w in weights]
        w_buffers = None if ws is None else [self._pool.get(("w", k), (rows, 1), np.float64) for k in range(len(ws))]
        wb = None
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
                if ws is not None:
                    wb = [w[lo:hi, 0] for w in ws]
            else:
                xb, tb = [b[: hi - lo] for b in x_buffers], [b[: hi - lo] for b in t_buffers]
                for source, buffer in zip(flat_xs, xb):
                    take_rows(source, order[lo:hi], buffer)
                for source, buffer in zip(ts, tb):
                    take_rows(source, order[lo:hi], buffer)
                if ws is not None:
                    for source, buffer in zip(ws, w_buffers):
                        take_rows(source, order[lo:hi], buffer[: hi - lo])
                    wb = [b[: hi - lo, 0] for b in w_buffers]
            hooks.on_train_batch_begin(batch)
            shaped = [b.reshape(hi - lo, *a.shape[1:]) for b, a in zip(xb, xs)]
            loss_value = self._train_step(self._unlisted(shaped), self._kernel_targets(self._unlisted(tb)), stop - start, wb, lo - start)
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

    def _train_step(self, xb, tb, n_global=None, weights=None, first_row=0):
        """Forward, loss, backward and one optimizer step on a batch; returns the batch's mean loss.

        ``n_global`` is the size of the global batch when ``xb`` is this process's shard of it, and
        ``first_row`` where the shard begins in it; ``weights``: the batch's sample weights per output
        (None: unweighted). A non-finite loss skips the step, so that its NaN never reaches the weights.
        """
        n_local = _listed(xb)[0].shape[0]
        n_global = n_local if n_global is None else n_global
        parallel = self._parallel
        shard = getattr(self, "_shard", None)
        if shard is not None:
            shard.first_row = first_row
        if n_local:
            loss_value, y_pred = self._loss_and_gradients(xb, tb, parallel.share(n_local, n_global), weights)
        else:  # more processes than rows in this batch: contribute nothing
            self._empty_pass(xb)
            loss_value, y_pred = 0.0, None
            self._output_losses = [0.0] * len(self._outputs)
            self._store.grads[:] = 0
        loss_value = parallel.reduce_step(self._store, loss_value, n_local, n_global)
        self._average_replicated_state(parallel.share(n_local, n_global) if n_global else 0.0)
        if not math.isfinite(loss_value):
            return loss_value
        self.optimizer.step(self._store.params, self._store.grads, self._store.offsets)
        if n_local and self.metrics:
            for output, predictions, targets in zip(self._outputs, _listed(y_pred), _listed(tb)):
                for metric in output.metrics:
                    metric.update(predictions, targets)
        return loss_value

    def _empty_pass(self, xb):
        """Forward and backward over zero rows, for a process whose shard of a batch is empty: the
        layers that depend on the whole batch still take part in its collectives (synchronized batch
        normalization's allreduces) and advance their random streams, as the other processes do."""
        if self._parallel.size == 1 or not any(getattr(layer, "shard", None) is not None for layer in self._layers):
            return
        self._run_forward(_listed(xb), training=True)
        gradients = [None] * self._slot_count
        for output in self._outputs:
            gradients[output.slot] = np.zeros((0, *output.shape), dtype=self.dtype)
        self._backward(gradients)

    def _average_replicated_state(self, share):
        """Average over processes the state each one updates from its own shard (moving statistics of
        ``BatchNormalization(synchronized=False)``), weighted by shard size: one allreduce, so that
        every replica holds the same state whenever it is read."""
        if self._parallel.size == 1:
            return
        arrays = [array for layer in self._layers for array in getattr(layer, "replicated_state", ())]
        if not arrays:
            return
        total = sum(array.size for array in arrays)
        buffer = self._pool.get("replicated_state", (total,), np.float64)
        position = 0
        for array in arrays:
            np.multiply(array.reshape(-1), share, out=buffer[position : position + array.size])
            position += array.size
        self._parallel.allreduce_sum(buffer)
        position = 0
        for array in arrays:
            array.reshape(-1)[...] = buffer[position : position + array.size]
            position += array.size

    # -- inference -------------------------------------------------------------------------------

    def _batch_size_or_default(self, batch_size):
        return _PREDICT_BATCH if batch_size is None else validation.positive_int(batch_size, "batch_size")

    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None):
        """Outputs for ``x``, computed in chunks of ``batch_size`` rows (1024 when None): one array, or
        a list (a dict, for outputs given by name) for several outputs.

        ``verbose``: 0 (the default) silent; ``"auto"``, 1 or 2 print one line when done. Keras's
        ``steps`` and ``callbacks`` are refused (one pass over the array; only fit calls callbacks).
        """
        _refuse_keras_arguments("predict", {}, steps=steps, callbacks=callbacks)
        batch_size = self._batch_size_or_default(batch_size)
        verbose = _verbosity(verbose)
        xs = _listed(self._inputs(x))
        n = xs[0].shape[0]
        if verbose:
            print(f"predict: {n} samples in {-(-n // batch_size)} batches of up to {batch_size}")
        if self._device == "cuda":
            return backend.engine_for(self).predict(self._unlisted(xs), batch_size)
        results = [np.empty((n, *output.shape), dtype=self.dtype) for output in self._outputs]
        flats = [result.reshape(n, -1) for result in results]
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            values = self._run_forward([a[start:stop] for a in xs], training=False)
            for flat, output in zip(flats, self._outputs):
                flat[start:stop] = values[output.slot].reshape(stop - start, -1)
        return self._unlisted(results, self._output_keys)

    def evaluate(self, x, y, batch_size=None, verbose=0, sample_weight=None, steps=None, callbacks=None, return_dict=False, **kwargs):
        """Loss and metrics over ``(x, y)``: ``loss`` alone, ``[loss, ...]`` in `metrics_names` order, or a dict with ``return_dict``.

        Keras 3's arguments in its order. ``sample_weight`` weights each sample's loss as in `fit`
        (``sum_i w_i loss_i / n``; metrics unweighted); ``verbose`` 0 (default) silent, else one line.
        ``steps`` and ``callbacks`` (and Keras 2's ``max_queue_size``, ``workers``,
        ``use_multiprocessing``) are refused with the reason.
        """
        _refuse_keras_arguments("evaluate", kwargs, steps=steps, callbacks=callbacks)
        self._require_compiled("evaluate")
        self._refuse_weights_on_device("evaluate", sample_weight)
        batch_size = self._batch_size_or_default(batch_size)
        verbose = _verbosity(verbose)
        return_dict = validation.boolean(return_dict, "return_dict")
        x, targets = self._data(x, y)
        weights = self._sample_weights(sample_weight, _listed(x)[0].shape[0])
        logs = self._evaluate_arrays(x, targets, batch_size, weights=weights)
        if verbose:
            print(" - ".join(f"{key}: {value:.4f}" for key, value in logs.items()))
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _evaluate_arrays(self, x, targets, batch_size, parallel=None, weights=None):
        """Loss and metrics over arrays in kernel form; with ``parallel``, over this process's shard,
        then summed over processes (fit's validation); ``weights``: sample weights per output, or None."""
        if self._device == "cuda":
            return backend.engine_for(self).evaluate(x, targets, batch_size, parallel)
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
                if weights is not None and weights[k] is not None:
                    value = weighted_loss(output, y_pred, tb, y_pred, weights[k][start:stop], with_grad=False)
                elif output.fused:
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


#: Keras arguments fastdnn does not take, with the value that means "not used" and the reason.
_REFUSED = {
    "steps_per_epoch": (None, "an epoch is one pass over the NumPy arrays; train on fewer rows by slicing x and y"),
    "validation_steps": (None, "validation is one pass over the validation arrays; slice them to validate on fewer rows"),
    "steps": (None, "{method} makes one pass over the NumPy arrays; slice x to use fewer rows"),
    "callbacks": (None, "only fit reports to callbacks in fastdnn; {method} runs without them"),
    "max_queue_size": (10, "a Keras 2 argument for data generators (removed in Keras 3); fastdnn reads NumPy arrays in memory, there is no queue"),
    "workers": (1, "a Keras 2 argument for data generators (removed in Keras 3); fastdnn reads NumPy arrays in memory; its kernels' threads: fastdnn.threads.set_num_threads"),
    "use_multiprocessing": (False, "a Keras 2 argument for data generators (removed in Keras 3); for several processes see fastdnn.distributed"),
}
_KERAS_2_ARGUMENTS = ("max_queue_size", "workers", "use_multiprocessing")


def _refuse_keras_arguments(method, extra, **named):
    """Refuse, by name and with the reason, a Keras argument this method does not support when it is
    given a value other than its "not used" default; an argument Keras does not know is a TypeError."""
    for name in extra:
        if name not in _KERAS_2_ARGUMENTS:
            raise TypeError(f"{method}() got an unexpected keyword argument {name!r}")
    for name, value in {**named, **extra}.items():
        unused, reason = _REFUSED[name]
        if value is unused or (name == "callbacks" and isinstance(value, (list, tuple)) and not value):
            continue
        same_kind = isinstance(value, bool) == isinstance(unused, bool)
        if unused is not None and same_kind and value == unused:
            continue
        raise ValueError(f"{name}: not supported by {method}, received {value!r}: {reason.format(method=method)}")


def weighted_loss(output, y_pred, targets, grad, sample_weights, with_grad=True):
    """``output``'s loss of a batch under per-sample weights (`fastdnn.losses.Loss.compute_weighted`);
    a sample of several prediction rows (a sequence output) gives its weight to each of its rows, as
    Keras broadcasts it."""
    rows = y_pred.shape[0]
    count = sample_weights.shape[0]
    row_weights = sample_weights if rows == count else np.repeat(sample_weights, rows // count)
    source = output.producer.logits.reshape(y_pred.shape) if output.fused else y_pred
    return output.loss.compute_weighted(source, targets, grad, row_weights, fused=output.fused, with_grad=with_grad)


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
