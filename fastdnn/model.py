"""Sequential: a stack of layers with Keras's ``compile`` / ``fit`` / ``evaluate`` / ``predict``.

One training step::

    batch gathered into a reused buffer
    -> layer.forward(x, training=True)        one kernel call per layer, buffers reused
    -> loss value and gradient                fused with a softmax/sigmoid output where possible
    -> layer.backward(dLdY)                   gradients land in views of ONE flat buffer
    -> optimizer.step(params, grads)          ONE fused kernel over all parameters
    -> metrics, callbacks, progress
"""

import math

import numpy as np

from fastdnn import backend, callbacks as callbacks_module
from fastdnn import config, distributed, layers as layers_module
from fastdnn import losses, metrics as metrics_module, optimizers, random, saving, threads, validation
from fastdnn.buffers import BufferPool
from fastdnn.kernels.cpu.data import all_finite, take_rows
from fastdnn.params import ParameterStore

_PREDICT_BATCH = 1024  # rows per chunk when batch_size is None: big enough for BLAS, small for memory


class TrainingDivergedError(ValueError):
    """The loss became NaN or infinite during ``fit`` although inputs and targets were finite."""


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of Layer, optional
        The layers, first to last; the first may be ``fd.layers.Input(shape)`` or carry ``input_shape``.
    name : str, optional
    """

    def __init__(self, layers=None, name=None):
        self.name = name or "sequential"
        self._layers = []
        self._input_shape = None
        self.built = False
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._store = None
        self._pool = BufferPool()
        #: "cpu" or "cuda" (set by compile); on "cuda" a backend.CudaEngine runs epochs and inference.
        self._device = "cpu"
        self._cuda = None
        #: How fit splits and reduces work: one process, or data parallel (fastdnn.distributed).
        self._parallel = distributed.SingleProcess()
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"layers: expected a list of layers, received {validation.describe(layers)}")
            for layer in layers:
                self.add(layer)

    # -- structure -------------------------------------------------------------------------------

    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        """Append a layer (an ``Input`` is only accepted first)."""
        if not isinstance(layer, layers_module.Layer):
            raise TypeError(f"layer: expected a fastdnn.layers.Layer, received {validation.describe(layer)}")
        # Adding to a built model re-packs the parameters at the next use (built layers keep theirs).
        self.built = False
        if isinstance(layer, layers_module.InputLayer):
            if self._layers or self._input_shape is not None:
                raise ValueError("layer: an Input can only be the first entry of a Sequential model")
            self._input_shape = layer.input_shape
            return
        if not self._layers and self._input_shape is None and layer.input_shape is not None:
            self._input_shape = layer.input_shape
        self._layers.append(layer)

    def build(self, input_shape=None):
        """Create every layer's parameters for inputs of sample shape ``input_shape`` and pack them."""
        if input_shape is not None:
            input_shape = validation.shape_tuple(input_shape, "input_shape")
            if self._input_shape is not None and input_shape != self._input_shape:
                raise ValueError(f"input_shape: the model was declared with {self._input_shape}, received {input_shape}")
            self._input_shape = input_shape
        if self._input_shape is None:
            raise ValueError("input_shape: unknown; give the first layer input_shape=..., start with fd.layers.Input, or call fit/predict")
        if not self._layers:
            raise ValueError("layers: the model has no layers")
        dtype = np.dtype(config.floatx())
        shape = self._input_shape
        for layer in self._layers:
            if not layer.built:
                layer.build(shape, dtype)
            elif layer.input_shape != shape:
                raise ValueError(f"layer {layer.name!r} was built for input {layer.input_shape}, but receives {shape}")
            layer.compute_input_grad = True
            shape = layer.output_shape
        self._layers[0].compute_input_grad = False
        self.dtype = self._layers[0].dtype
        self.output_shape = shape
        self.built = True
        self._pack()
        if self.compiled:
            self._link_loss_and_metrics()

    def _pack(self):
        """Move trainable parameters into the flat store (again, when ``trainable`` flags changed)."""
        trainable = [layer for layer in self._layers if layer.trainable]
        self._store = ParameterStore(trainable, self.dtype)
        self._packed_layers = tuple(trainable)
        if self.compiled:
            self.optimizer.build(self._store.size, self.dtype)

    # -- compile ---------------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, device=None):
        """Choose the optimizer, the loss and the metrics.

        Parameters
        ----------
        optimizer : str or Optimizer
            ``"sgd"``, ``"momentum"``, ``"nag"``, ``"adagrad"``, ``"rmsprop"``, ``"adadelta"``, ``"adam"``, or an instance.
        loss : str or Loss
        metrics : list of str or Metric, optional
            ``"accuracy"`` is resolved from the loss as in Keras.
        device : "cpu" or "cuda", optional
            Where training and inference run (default ``fastdnn.config.device()``). ``"cuda"`` keeps
            parameters, optimizer state and batches on the GPU (numba.cuda kernels, ``pip install
            'fastdnn[cuda]'``); a ValueError names ``device`` when CUDA is unavailable.
        """
        device = backend.check_device(config.device() if device is None else device, "device")
        if loss is None:
            raise ValueError(f"loss: expected a loss name ({', '.join(losses.registry.names())}) or a Loss, received None")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, metrics_module.Metric)) or not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics: expected a list of metric names or Metric instances, received {validation.describe(metrics)}")
        for i, metric in enumerate(metrics):
            if not isinstance(metric, (str, metrics_module.Metric)):
                raise TypeError(f"metrics[{i}]: expected a metric name or a Metric, received {validation.describe(metric)}")
            if isinstance(metric, str):
                metrics_module.registry.lookup(metric, f"metrics[{i}]")
        self._metric_identifiers = list(metrics)
        self._device, self._cuda = device, None
        self.compiled = True
        if not self.built and self._input_shape is not None and self._layers:
            self.build()
        elif self.built:
            self.optimizer.build(self._store.size, self.dtype)
            self._link_loss_and_metrics()
        if device == "cuda" and self.built:
            backend.engine_for(self)  # refuses unsupported layers now rather than in fit

    def _link_loss_and_metrics(self):
        """Resolve what depends on both the loss and the built output: fusion and ``"accuracy"``."""
        last = self._layers[-1]
        activation = getattr(last, "activation", None)
        output_activation = activation.name if activation is not None else None
        if isinstance(self.loss, losses._ProbabilityLoss) and not self.loss.from_logits:
            if output_activation not in ("softmax", "sigmoid"):
                raise ValueError(
                    f"loss: {self.loss.name} expects probabilities, but the output layer {last.name!r} has "
                    f"activation {output_activation!r}; use a softmax or sigmoid output, or from_logits=True"
                )
        self._fused = (
            not self.loss.from_logits
            and self.loss.fused_activation is not None
            and output_activation == self.loss.fused_activation
        )
        for layer in self._layers:
            if hasattr(layer, "keep_logits"):
                layer.keep_logits = False
        if self._fused:
            last.keep_logits = True
        width = self.output_shape[-1]
        self.metrics = [metrics_module.get(m, loss=self.loss, output_width=width) for m in self._metric_identifiers]
        kind = metrics_module.SPARSE if self.loss.sparse else metrics_module.DENSE
        for metric in self.metrics:
            if kind not in metric.target_kinds:
                raise ValueError(
                    f"metrics: {metric.name} needs {' or '.join(metric.target_kinds)} targets, but {self.loss.name} "
                    f"uses {kind} targets"
                )
        self.metrics_names = ["loss"] + [m.name for m in self.metrics]

    # -- data ------------------------------------------------------------------------------------

    def _require_compiled(self, method):
        if not self.compiled:
            raise RuntimeError(f"{method}: the model must be compiled first: call model.compile(optimizer=..., loss=...)")

    def _inputs(self, x, name="x"):
        """Validated float inputs (building the model from their shape if needed)."""
        dtype = self.dtype if self.built else np.dtype(config.floatx())
        x = self._layers[0].validate_input(x, name, dtype) if self._layers else validation.float_array(x, name, dtype)
        if not self.built:
            self.build(None if self._input_shape is not None else x.shape[1:])
        if x.shape[1:] != self._input_shape:
            raise ValueError(
                f"{name}: expected samples of shape {self._input_shape} (input of shape (n, "
                f"{', '.join(map(str, self._input_shape))})), received an array of shape {x.shape}"
            )
        return x

    def _data(self, x, y, x_name="x", y_name="y"):
        """Validated inputs and targets (one row per sample, in the loss's kernel form)."""
        x = self._inputs(x, x_name)
        n = x.shape[0]
        if y is None:
            raise ValueError(f"{y_name}: expected {n} targets (one per sample of {x_name}), received None")
        y = validation.to_array(y, y_name)
        if y.ndim == 0 or y.shape[0] != n:
            received = validation.describe(y) if y.ndim == 0 else y.shape[0]
            raise ValueError(f"{y_name}: expected {n} targets (one per sample of {x_name}), received {received}")
        targets = self.loss.prepare_targets(y, self.output_shape, n, self.dtype, name=y_name)
        return x, targets.reshape(n, -1)

    def _kernel_targets(self, rows):
        return rows.reshape(-1) if self.loss.sparse else rows.reshape(-1, self.output_shape[-1])

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
        x : array of shape (n, ...)
            The inputs.
        y : array
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
                "loss": self.loss.get_config(),
                "optimizer": self.optimizer.get_config(),
                "x": [list(train.shape), repr(float(np.sum(train, dtype=np.float64)))],
                "validation": None if val is None else list(val.shape),
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
        steps = -(-x.shape[0] // batch_size)
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
            split = int(x.shape[0] * (1.0 - validation_split))
            if split < 1 or split >= x.shape[0]:
                raise ValueError(
                    f"validation_split: {validation_split} of {x.shape[0]} samples leaves an empty training or validation set"
                )
            x, x_val = x[:split], x[split:]
            targets, t_val = targets[:split], targets[split:]
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
        n = x.shape[0]
        order = parallel.broadcast_order(random.generator().permutation(n)) if shuffle else None
        flat_x = x.reshape(n, -1)
        x_buffer = self._pool.get("x", (min(batch_size, n), flat_x.shape[1]), x.dtype)
        t_buffer = self._pool.get("t", (min(batch_size, n), targets.shape[1]), targets.dtype)
        for metric in self.metrics:
            metric.reset_state()
        loss_sum = 0.0
        seen = 0
        batch_logs = hooks.wants_batch_logs
        logs = {}
        for batch, start in enumerate(range(0, n, batch_size)):
            stop = min(start + batch_size, n)
            lo, hi = parallel.shard(start, stop)
            if order is None:
                xb, tb = flat_x[lo:hi], targets[lo:hi]
            else:
                xb, tb = x_buffer[: hi - lo], t_buffer[: hi - lo]
                take_rows(flat_x, order[lo:hi], xb)
                take_rows(targets, order[lo:hi], tb)
            hooks.on_train_batch_begin(batch)
            loss_value = self._train_step(xb.reshape(hi - lo, *x.shape[1:]), self._kernel_targets(tb), stop - start)
            threads.training_step(self)  # times steps to choose the thread count (fastdnn.threads)
            if not math.isfinite(loss_value):
                return self._logs(loss_sum / max(seen, 1)), (batch, loss_value)
            loss_sum += loss_value * (stop - start)
            seen += stop - start
            if batch_logs:
                logs = self._logs(loss_sum / seen)
            hooks.on_train_batch_end(batch, logs)
            if self.stop_training:
                break
        self._reduce_metrics()
        return self._logs(loss_sum / max(seen, 1)), None

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

    def _logs(self, loss_value):
        logs = {"loss": float(loss_value)}
        for metric in self.metrics:
            logs[metric.name] = float(metric.result())
        return logs

    def _forward(self, x, training):
        out = x
        for layer in self._layers:
            out = layer.forward(out, training=training)
        return out.reshape(-1, self.output_shape[-1])

    def _train_step(self, xb, tb, n_global=None):
        """Forward, loss, backward and one optimizer step on a batch; returns the batch's mean loss.

        ``n_global`` is the size of the global batch when ``xb`` is this process's shard of it.
        A non-finite loss skips the step, so that its NaN never reaches the weights.
        """
        n_local = xb.shape[0]
        n_global = n_local if n_global is None else n_global
        parallel = self._parallel
        if n_local:
            loss_value, y_pred = self._loss_and_gradients(xb, tb, parallel.share(n_local, n_global))
        else:  # more processes than rows in this batch: contribute nothing
            loss_value, y_pred = 0.0, None
            self._store.grads[:] = 0
        loss_value = parallel.reduce_step(self._store, loss_value, n_local, n_global)
        if not math.isfinite(loss_value):
            return loss_value
        self.optimizer.step(self._store.params, self._store.grads, self._store.offsets)
        if n_local:
            for metric in self.metrics:
                metric.update(y_pred, tb)
        return loss_value

    def _loss_and_gradients(self, xb, tb, share=1.0):
        """Mean loss of a batch and its gradient in the flat store (``self._store.grads``).

        ``share`` scales the gradient (not the loss): a data-parallel shard's weight in the global batch.
        Returns ``(loss, predictions)``; the predictions are a view of the output layer's buffer.
        """
        y_pred = self._forward(xb, training=True)
        grad = self._pool.get("dloss", y_pred.shape, self.dtype)
        last = self._layers[-1]
        output_grad = grad.reshape(xb.shape[0], *self.output_shape)
        if self._fused:
            loss_value = self.loss.compute_from_logits(last.logits.reshape(y_pred.shape), tb, grad)
        else:
            loss_value = self.loss.compute(y_pred, tb, grad)
        if share != 1.0:
            grad *= share  # backpropagation is linear in dL/dy: scaling here scales every gradient
        gradient = last.backward_from_logits(output_grad) if self._fused else last.backward(output_grad)
        for layer in reversed(self._layers[:-1]):
            gradient = layer.backward(gradient)
        return loss_value, y_pred

    # -- inference -------------------------------------------------------------------------------

    def _batch_size_or_default(self, batch_size):
        return _PREDICT_BATCH if batch_size is None else validation.positive_int(batch_size, "batch_size")

    def predict(self, x, batch_size=None):
        """Outputs for ``x``, computed in chunks of ``batch_size`` rows (1024 when None)."""
        batch_size = self._batch_size_or_default(batch_size)
        x = self._inputs(x)
        if self._device == "cuda":
            return backend.engine_for(self).predict(x, batch_size)
        n = x.shape[0]
        result = np.empty((n, *self.output_shape), dtype=self.dtype)
        flat = result.reshape(n, -1)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            flat[start:stop] = self._forward(x[start:stop], training=False).reshape(stop - start, -1)
        return result

    def evaluate(self, x, y, batch_size=None, verbose=0, return_dict=False):
        """Loss and metrics over ``(x, y)``: ``loss`` alone, ``[loss, *metrics]``, or a dict with ``return_dict``."""
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
        lo, hi = (0, x.shape[0]) if parallel is None else parallel.shard(0, x.shape[0])
        loss_sum = 0.0
        last = self._layers[-1]
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            tb = self._kernel_targets(targets[start:stop])
            y_pred = self._forward(x[start:stop], training=False)
            if self._fused:
                value = self.loss.compute_from_logits(last.logits.reshape(y_pred.shape), tb, y_pred, False)
            else:
                value = self.loss.compute(y_pred, tb, y_pred, False)
            loss_sum += value * (stop - start)
            for metric in self.metrics:
                metric.update(y_pred, tb)
        if parallel is not None:
            (loss_sum,) = self._reduce_metrics([loss_sum])
        return self._logs(loss_sum / x.shape[0])

    # -- weights and description -----------------------------------------------------------------

    def count_params(self):
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self._layers)

    def _require_built(self, method):
        if not self.built:
            if self._input_shape is None:
                raise RuntimeError(
                    f"{method}: the model is not built yet; give the first layer input_shape=..., start with "
                    f"fd.layers.Input(shape), or call fit/predict first"
                )
            self.build()

    def get_weights(self):
        """Copies of every parameter, layer by layer."""
        self._require_built("get_weights")
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Set every variable from a list like `get_weights` returns (validated before any write)."""
        self._require_built("set_weights")
        variables = [(layer, key, value) for layer in self._layers for key, value in layer.variables.items()]
        if not isinstance(weights, (list, tuple)) or len(weights) != len(variables):
            count = len(weights) if isinstance(weights, (list, tuple)) else validation.describe(weights)
            raise ValueError(f"weights: expected a list of {len(variables)} arrays, received {count}")
        checked = [
            layers_module.checked_weight(value, current, f"weights[{i}] ({layer.name}.{key})")
            for i, ((layer, key, current), value) in enumerate(zip(variables, weights))
        ]
        for (_, _, current), array in zip(variables, checked):
            current[...] = array

    def summary(self, print_fn=None):
        """Print each layer's name, type, output shape and parameter count."""
        self._require_built("summary")
        print_fn = print_fn or print
        rows = [(f"{layer.name} ({type(layer).__name__})", str((None, *layer.output_shape)), f"{layer.count_params():,}") for layer in self._layers]
        widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(("Layer (type)", "Output Shape", "Param #"))]
        line = "  ".join(("Layer (type)".ljust(widths[0]), "Output Shape".ljust(widths[1]), "Param #".rjust(widths[2])))
        rule = "=" * len(line)
        print_fn(f'Model: "{self.name}"')
        print_fn(rule)
        print_fn(line)
        print_fn(rule)
        for name, shape, count in rows:
            print_fn("  ".join((name.ljust(widths[0]), shape.ljust(widths[1]), count.rjust(widths[2]))))
        print_fn(rule)
        total = self.count_params()
        trainable = sum(layer.count_trainable_params() for layer in self._layers)
        print_fn(f"Total params: {total:,} ({total * self.dtype.itemsize / 1024:.2f} KB)")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")

    # -- saving ----------------------------------------------------------------------------------

    def save(self, path, include_optimizer=True):
        """Write architecture, weights, compile settings and optimizer state to one file (atomically).

        ``fd.load_model(path)`` gives the model back, ready to continue training.
        """
        saving.save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        """Write only the weights (see `load_weights`)."""
        saving.save_weights(self, path)

    def load_weights(self, path):
        """Set the weights from a file written by `save_weights` or `save`, after checking every shape."""
        saving.load_weights(self, path)

    def get_config(self):
        config_ = {"name": self.name, "layers": [layers_module.serialize(layer) for layer in self._layers]}
        if self._input_shape is not None:
            config_["input_shape"] = list(self._input_shape)
        return config_

    @classmethod
    def from_config(cls, config_):
        model = cls([layers_module.get(entry) for entry in config_["layers"]], name=config_.get("name"))
        if config_.get("input_shape") is not None and model._input_shape is None:
            model._input_shape = validation.shape_tuple(config_["input_shape"], "input_shape")
        return model


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
