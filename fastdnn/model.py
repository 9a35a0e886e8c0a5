"""The graph engine: ``fd.Model(inputs, outputs)`` (Keras's functional API) and `Sequential`, its chain.

One training step over any graph::

    forward over the nodes in topological order (computed once, at build)
    -> each output's loss value and gradient     fused with a softmax/sigmoid output where possible
    -> backward over the nodes in reverse order  a tensor read by several nodes receives the SUM of
                                                 their gradients; a layer called twice adds both
                                                 calls' parameter gradients in the ONE flat buffer
    -> optimizer.step(params, grads)             ONE fused kernel over all parameters

`Sequential` is the graph whose nodes form a chain: it only adds ``add`` and building from the
first data it sees. The loops over batches (fit / evaluate / predict) are in `fastdnn.training`.
"""

import copy

import numpy as np

from fastdnn import config, device_parallel, distributed, export, graph, layers as layers_module
from fastdnn import losses, metrics as metrics_module, optimizers, saving, training, validation
from fastdnn.buffers import BufferPool
from fastdnn.params import ParameterStore
from fastdnn.training import TrainingDivergedError

__all__ = ["Input", "Model", "Sequential", "TrainingDivergedError"]

Input = graph.Input


class _Step:
    """One node of the plan the engine runs: a layer call between value slots."""

    __slots__ = ("layer", "sources", "target", "call", "needs_input_grad", "accumulate", "fused", "saved", "reads_one_tensor_once")

    def __init__(self, layer, sources, target):
        self.layer = layer
        self.sources = sources  # value slots read (one for single-input layers)
        self.target = target  # value slot written
        self.call = None  # for a shared layer: which of its calls (selects its buffers and saved state)
        self.needs_input_grad = True
        self.accumulate = None  # (start, stop) of the layer's gradients in the flat buffer: add, do not overwrite
        self.fused = False  # backward from the logits given by a fused loss
        self.saved = None
        #: A single-input layer whose input is read by no other node: its input gradient needs no sum.
        self.reads_one_tensor_once = False


class _Output:
    """One model output: its tensor, name, and (once compiled) loss, weight and metrics."""

    def __init__(self, name, tensor, slot):
        self.name = name
        self.tensor = tensor
        self.slot = slot
        self.shape = tensor.sample_shape
        self.width = self.shape[-1]
        self.producer = tensor.node.layer
        self.gradient_key = ("dloss", slot)  # its loss gradient's buffer in the model's pool
        self.loss = None
        self.weight = 1.0
        self.metric_identifiers = []
        self.metrics = []
        self.fused = False


class Model(training.Trainer):
    """A model from a graph of layer calls (Keras's functional API).

    Parameters
    ----------
    inputs : SymbolicTensor, list or dict of them
        Made by ``fd.Input(shape)``.
    outputs : SymbolicTensor, list or dict of them
        Made by calling layers on the inputs (and on each other's outputs).
    name : str, optional

    Examples
    --------
    >>> x = fd.Input((8,))
    >>> h = fd.layers.Dense(8, activation="relu")(x)
    >>> y = fd.layers.Dense(3, activation="softmax")(fd.layers.Add()([x, h]))
    >>> model = fd.Model(x, y)
    """

    def __init__(self, inputs=None, outputs=None, name=None):
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name: expected a non-empty string, received {validation.describe(name)}")
        self._init_state(name or "functional")
        if inputs is None or outputs is None:
            if type(self) is Model:
                raise TypeError("Model: expected inputs and outputs (symbolic tensors made by fd.Input and layer calls)")
            return
        self._set_graph(inputs, outputs)

    def _init_state(self, name):
        self.name = name
        self._layers = []
        self.built = False
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._store = None
        self._packed_layers = ()
        self._pool = BufferPool()
        #: "cpu" or "cuda" (set by compile); on "cuda" a backend.CudaEngine runs epochs and inference.
        self._device = "cpu"
        self._cuda = None
        #: How fit splits and reduces work: one process, or data parallel (fastdnn.distributed).
        self._parallel = distributed.SingleProcess()
        #: During fit: the `fastdnn.distributed.Shard` handed to the layers that need the whole batch.
        self._shard = None

    # -- structure -------------------------------------------------------------------------------

    def _set_graph(self, inputs, outputs):
        """Trace the graph between ``inputs`` and ``outputs`` and plan its run; every check comes first,
        so a refused graph leaves the model as it was."""
        input_keys, input_tensors = graph.structure(inputs, "inputs")
        output_keys, output_tensors = graph.structure(outputs, "outputs")
        nodes = graph.trace(input_tensors, output_tensors)
        for j, tensor in enumerate(output_tensors):
            if tensor.is_input:
                raise ValueError(f"outputs: output {j} is the input {tensor.name!r}; an output must be computed by a layer")
        dtypes = {node.layer.dtype for node in nodes}
        if len(dtypes) > 1:
            raise ValueError(f"layers: the graph mixes dtypes {sorted(d.name for d in dtypes)}; build every layer with the same floatx")
        self.inputs = input_tensors
        self.outputs = output_tensors
        self._input_keys, self._output_keys = input_keys, output_keys
        self.input_names = input_keys or [t.name for t in input_tensors]
        self.output_names = _unique(output_keys or [t.name for t in output_tensors])
        self._nodes = nodes
        self._layers = _unique_layers(node.layer for node in nodes)
        self._plan_graph()

    def _plan_graph(self):
        """Value slots (inputs first), the plan of steps, and who reads each tensor."""
        slots = {id(t): i for i, t in enumerate(self.inputs)}
        for node in self._nodes:
            slots[id(node.output)] = len(slots)
        self._slot_count = len(slots)
        self._consumers = [0] * self._slot_count
        calls = {}
        for node in self._nodes:
            calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
        seen = {}
        self._plan = []
        for node in self._nodes:
            step = _Step(node.layer, tuple(slots[id(t)] for t in node.inputs), slots[id(node.output)])
            for source in step.sources:
                self._consumers[source] += 1
            # Gradients flow into every tensor but the model's inputs.
            step.needs_input_grad = any(source >= len(self.inputs) for source in step.sources)
            if calls[id(node.layer)] > 1:
                step.call = seen.get(id(node.layer), 0)
                seen[id(node.layer)] = step.call + 1
            else:
                node.layer.compute_input_grad = step.needs_input_grad
            self._plan.append(step)
        self._outputs = [_Output(name, tensor, slots[id(tensor)]) for name, tensor in zip(self.output_names, self.outputs)]
        for output in self._outputs:
            self._consumers[output.slot] += 1
        for step in self._plan:
            step.reads_one_tensor_once = not step.layer.multiple_inputs and self._consumers[step.sources[0]] == 1
        self._input_readers = [next(node.layer for node in self._nodes if any(t is tensor for t in node.inputs)) for tensor in self.inputs]
        self._input_shape = self._unlisted([t.sample_shape for t in self.inputs])
        self.output_shape = self._unlisted([o.shape for o in self._outputs])
        self.dtype = self._nodes[0].layer.dtype
        self.built = True
        self._pack()
        if self.compiled:
            self._link_loss_and_metrics()

    def _unlisted(self, values, keys=None):
        """``values`` as the model's inputs/outputs are shaped: one item alone, a dict by ``keys``, else a list."""
        if keys is not None:
            return dict(zip(keys, values))
        return values[0] if len(values) == 1 else list(values)

    @property
    def layers(self):
        """The model's layers (not its inputs), each once, in topological order."""
        return list(self._layers)

    @property
    def nodes(self):
        """The layer calls (`fastdnn.graph.Node`: ``layer``, ``inputs``, ``output``) in topological order;
        a shared layer appears once per call."""
        self._require_built("nodes")
        return list(self._nodes)

    def get_layer(self, name):
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"name: no layer {name!r} in model {self.name!r}; its layers are {[l.name for l in self._layers]}")

    def build(self, input_shape=None):
        """A graph model is built when it is made; this re-packs the parameters (after ``trainable`` changes)."""
        if input_shape is not None:
            shapes = [tuple(validation.shape_tuple(s, "input_shape")) for s in (input_shape if isinstance(input_shape, list) else [input_shape])]
            expected = [t.sample_shape for t in self.inputs]
            if shapes != expected:
                raise ValueError(f"input_shape: the model was declared with {self._unlisted(expected)}, received {input_shape}")
        self._pack()

    def _pack(self):
        """Move trainable parameters into the flat store (again, when ``trainable`` flags changed)."""
        trainable = [layer for layer in self._layers if layer.trainable]
        self._store = ParameterStore(trainable, self.dtype)
        self._packed_layers = tuple(trainable)
        spans = {}
        for (layer, _), start, stop in zip(self._store.variables, self._store.offsets[:-1], self._store.offsets[1:]):
            first, _ = spans.get(id(layer), (int(start), 0))
            spans[id(layer)] = (first, int(stop))
        # A shared layer's later calls (in backward order) add to what its earlier calls left.
        visited = set()
        for step in reversed(self._plan):
            span = spans.get(id(step.layer))
            step.accumulate = span if span is not None and id(step.layer) in visited else None
            visited.add(id(step.layer))
        if self.compiled:
            self.optimizer.build(self._store.size, self.dtype)

    # -- compile ---------------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, device=None):
        """Choose the optimizer, the loss(es) and the metrics.

        Parameters
        ----------
        optimizer : str or Optimizer
            ``"sgd"``, ``"momentum"``, ``"nag"``, ``"adagrad"``, ``"rmsprop"``, ``"adadelta"``, ``"adam"``, or an instance.
        loss : str, Loss, or a list / dict by output name of them
            One loss for every output, or one per output. The loss minimized is
            ``sum_k loss_weights[k] * loss_k``.
        loss_weights : list or dict of float, optional
            Weight of each output's loss (1 by default).
        metrics : list, list of lists, or dict by output name, optional
            A flat list applies to every output; ``"accuracy"`` is resolved from each output's loss as in Keras.
        device : "cpu" or "cuda", optional
            Where training and inference run (default ``fastdnn.config.device()``). ``"cuda"`` keeps
            parameters, optimizer state and batches on the GPU (numba.cuda kernels, ``pip install
            'fastdnn[cuda]'``); a ValueError names ``device`` when CUDA is unavailable (on one of
            several MPI ranks: at ``fit``, on every rank, so that no rank waits for it).
        """
        from fastdnn import backend

        device = config.device() if device is None else device
        try:
            backend.check_device(device, "device")
        except ValueError:
            # One of several MPI ranks without CUDA: raising here, alone, would leave the other ranks
            # waiting in fit; under data_parallel fit raises on every rank, naming this one.
            if device != "cuda" or not device_parallel.several_ranks():
                raise
        count = self._output_count()
        names = self._known_output_names()
        loss_list = _per_output(loss, "loss", count, names, _is_single_loss)
        resolved_losses = []
        for k, entry in enumerate(loss_list):
            argument = "loss" if count == 1 else f"loss[{names[k]!r}]"
            if entry is None:
                raise ValueError(f"{argument}: expected a loss name ({', '.join(losses.registry.names())}) or a Loss, received None")
            resolved_losses.append(losses.get(entry))
        weights = [1.0] * count if loss_weights is None else _per_output(loss_weights, "loss_weights", count, names, lambda v: not isinstance(v, (list, tuple, dict)), broadcast=False)
        weights = [validation.real_number(w, f"loss_weights[{k}]", low=0.0) for k, w in enumerate(weights)]
        metric_lists = self._metric_lists(metrics, count, names)
        self.optimizer = optimizers.get(optimizer)
        self._losses = resolved_losses
        self.loss = resolved_losses[0] if count == 1 else list(resolved_losses)
        self.loss_weights = weights
        self._metric_lists_given = metric_lists
        self._metric_identifiers = metric_lists[0] if count == 1 else metric_lists
        self._device, self._cuda = device, None
        self.compiled = True
        if not self.built and self._buildable():
            self.build()
        elif self.built:
            self.optimizer.build(self._store.size, self.dtype)
            self._link_loss_and_metrics()
        if device == "cuda" and self.built and backend.cuda_available():
            backend.engine_for(self)  # refuses unsupported layers and graphs now rather than in fit

    def _output_count(self):
        return len(self.outputs)

    def _known_output_names(self):
        return self.output_names

    def _buildable(self):
        return True

    def _metric_lists(self, metrics, count, names):
        """One list of metric identifiers per output, each name checked against the registry."""
        if metrics is None:
            return [[] for _ in range(count)]
        if isinstance(metrics, dict):
            unknown = [key for key in metrics if names is None or key not in names]
            if unknown:
                raise ValueError(f"metrics: unknown output names {unknown}; the model's outputs are {names or self.output_names}")
            lists = [metrics.get(name, []) for name in names]
            lists = [[entry] if isinstance(entry, (str, metrics_module.Metric)) else entry for entry in lists]
        elif isinstance(metrics, (list, tuple)) and count > 1 and metrics and all(isinstance(m, (list, tuple)) for m in metrics):
            if len(metrics) != count:
                raise ValueError(f"metrics: expected {count} lists (one per output), received {len(metrics)}")
            lists = [list(m) for m in metrics]
        elif isinstance(metrics, (list, tuple)):
            lists = [list(metrics)] + [[copy.deepcopy(m) if isinstance(m, metrics_module.Metric) else m for m in metrics] for _ in range(count - 1)]
        else:
            raise TypeError(f"metrics: expected a list of metric names or Metric instances, received {validation.describe(metrics)}")
        for k, entries in enumerate(lists):
            if not isinstance(entries, (list, tuple)):
                raise TypeError(f"metrics[{k}]: expected a list of metric names or Metric instances, received {validation.describe(entries)}")
            for i, metric in enumerate(entries):
                where = f"metrics[{i}]" if count == 1 else f"metrics[{k}][{i}]"
                if not isinstance(metric, (str, metrics_module.Metric)):
                    raise TypeError(f"{where}: expected a metric name or a Metric, received {validation.describe(metric)}")
                if isinstance(metric, str):
                    metrics_module.registry.lookup(metric, where)
        return [list(entries) for entries in lists]

    def _link_loss_and_metrics(self):
        """Resolve what depends on both the losses and the built outputs: fusion and ``"accuracy"``."""
        producers = {step.target: step for step in self._plan}
        for step in self._plan:
            step.fused = False
        for layer in self._layers:
            if hasattr(layer, "keep_logits"):
                layer.keep_logits = False
        single = len(self._outputs) == 1
        for output, loss, weight, identifiers in zip(self._outputs, self._losses, self.loss_weights, self._metric_lists_given):
            step = producers[output.slot]
            last = step.layer
            activation = getattr(last, "activation", None)
            output_activation = activation.name if activation is not None else None
            if isinstance(loss, losses._ProbabilityLoss) and not loss.from_logits and output_activation not in ("softmax", "sigmoid"):
                where = "loss" if single else f"loss[{output.name!r}]"
                raise ValueError(
                    f"{where}: {loss.name} expects probabilities, but the output layer {last.name!r} has "
                    f"activation {output_activation!r}; use a softmax or sigmoid output, or from_logits=True"
                )
            # Fused only where the logits' gradient is the whole story: the output read by nothing
            # else, made by a layer called once.
            output.fused = (
                not loss.from_logits
                and loss.fused_activation is not None
                and output_activation == loss.fused_activation
                and self._consumers[output.slot] == 1
                and step.call is None
            )
            output.loss, output.weight = loss, weight
            if output.fused:
                last.keep_logits = True
                step.fused = True
            width = output.shape[-1]
            output.metric_identifiers = identifiers
            output.metrics = [metrics_module.get(m, loss=loss, output_width=width) for m in identifiers]
            kind = metrics_module.SPARSE if loss.sparse else metrics_module.DENSE
            for metric in output.metrics:
                if kind not in metric.target_kinds:
                    raise ValueError(
                        f"metrics: {metric.name} needs {' or '.join(metric.target_kinds)} targets, but {loss.name} "
                        f"uses {kind} targets"
                    )
        self._fused = self._outputs[0].fused if single else None
        self.metrics = [m for output in self._outputs for m in output.metrics]
        self.metrics_names = list(self._log_names())

    def _log_names(self):
        """The keys of the logs and History, as Keras names them."""
        yield "loss"
        if len(self._outputs) > 1:
            for output in self._outputs:
                yield f"{output.name}_loss"
            for output in self._outputs:
                for metric in output.metrics:
                    yield f"{output.name}_{metric.name}"
        else:
            for metric in self._outputs[0].metrics:
                yield metric.name

    # -- the engine ------------------------------------------------------------------------------

    def _run_forward(self, xs, training):
        """Values of every slot after a forward pass over the plan (inputs in the first slots)."""
        values = [None] * self._slot_count
        values[: len(xs)] = xs
        for step in self._plan:
            layer = step.layer
            if step.call is not None:
                layer._select_call(step.call)
            if layer.multiple_inputs:
                out = layer.forward([values[s] for s in step.sources], training=training)
            else:
                out = layer.forward(values[step.sources[0]], training=training)
            if step.call is not None and training:
                # What this call keeps for backward (its cache, logits): the next call overwrites it.
                step.saved = {key: value for key, value in layer.__dict__.items() if key.startswith("_") and key != "_local"}
            values[step.target] = out
        return values

    def _forward(self, x, training):
        """Outputs for a batch (one 2-D array per output, rows by last axis), one array alone."""
        values = self._run_forward(_listed(x), training)
        return self._unlisted([values[o.slot].reshape(-1, o.shape[-1]) for o in self._outputs])

    def _add_gradient(self, gradients, slot, gradient):
        """Give ``gradient`` to tensor ``slot``: as is for a tensor read once, else summed in a buffer."""
        if self._consumers[slot] == 1:
            gradients[slot] = gradient
            return
        current = gradients[slot]
        if current is None:
            buffer = self._pool.get(("grad", slot), gradient.shape, self.dtype)
            np.copyto(buffer, gradient)
            gradients[slot] = buffer
        else:
            np.add(current, gradient.reshape(current.shape), out=current)

    def _loss_and_gradients(self, xb, tb, share=1.0, weights=None):
        """Mean (weighted) loss of a batch and its gradient in the flat store (``self._store.grads``).

        ``share`` scales the gradient (not the loss): a data-parallel shard's weight in the global batch.
        ``weights``: per output, the batch's sample weights (or None), reduced as Keras reduces them
        (`fastdnn.losses.Loss.compute_weighted`).
        Returns ``(loss, predictions)``; the predictions are views of the output layers' buffers (one
        2-D array per output; an array alone for a single output). Each output's weighted loss is left
        in ``self._output_losses``.
        """
        xs = xb if isinstance(xb, list) else [xb]
        ts = tb if isinstance(tb, list) else [tb]
        n = xs[0].shape[0]
        values = self._run_forward(xs, training=True)
        gradients = [None] * self._slot_count
        total = 0.0
        predictions = []
        output_losses = self._output_losses = [0.0] * len(self._outputs)
        for k, output in enumerate(self._outputs):
            y_pred = values[output.slot].reshape(-1, output.width)
            grad = self._pool.get(output.gradient_key, y_pred.shape, self.dtype)
            if weights is not None and weights[k] is not None:
                value = training.weighted_loss(output, y_pred, ts[k], grad, weights[k])
            elif output.fused:
                value = output.loss.compute_from_logits(output.producer.logits.reshape(y_pred.shape), ts[k], grad)
            else:
                value = output.loss.compute(y_pred, ts[k], grad)
            scale = output.weight * share
            if scale != 1.0:
                grad *= scale  # backpropagation is linear in dL/dy: scaling here scales every gradient
            output_losses[k] = output.weight * value
            total += output_losses[k]
            predictions.append(y_pred)
            self._add_gradient(gradients, output.slot, grad.reshape(n, *output.shape))
        self._backward(gradients)
        return total, (predictions[0] if len(predictions) == 1 else predictions)

    def _backward(self, gradients):
        """Backward over the plan in reverse, from the outputs' gradients in ``gradients``."""
        grads = self._store.grads
        n_inputs = len(self.inputs)
        for step in reversed(self._plan):
            gradient = gradients[step.target]
            layer = step.layer
            if step.call is not None:
                layer.__dict__.update(step.saved)
                layer._select_call(step.call)
                layer.compute_input_grad = step.needs_input_grad
            if step.accumulate is not None:
                start, stop = step.accumulate
                kept = self._pool.get(("accumulate", id(layer)), (stop - start,), self.dtype)
                np.copyto(kept, grads[start:stop])
            result = layer.backward_from_logits(gradient) if step.fused else layer.backward(gradient)
            if step.accumulate is not None:
                grads[start:stop] += kept
            if not step.needs_input_grad:
                continue
            if step.reads_one_tensor_once:  # the chain's case: hand the view over, no call
                gradients[step.sources[0]] = result
            else:
                graph.deliver(step, result, n_inputs, gradients, self._add_gradient)

    # -- weights and description -----------------------------------------------------------------

    def count_params(self):
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self._layers)

    def _require_built(self, method):
        if not self.built:
            self.build()

    def get_weights(self):
        """Copies of every variable, layer by layer in ``model.layers`` order (parameters, then state)."""
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

    def _summary_rows(self):
        """(name (type), output shape, params, connected to) per layer, inputs first."""
        calls = {}
        where = {id(t): f"{t.name}[0][0]" for t in self.inputs}
        connected = {}
        for node in self._nodes:
            index = calls.get(id(node.layer), 0)
            calls[id(node.layer)] = index + 1
            where[id(node.output)] = f"{node.layer.name}[{index}][0]"
            connected.setdefault(id(node.layer), []).extend(where[id(t)] for t in node.inputs)
        rows = [(f"{t.name} (InputLayer)", str(t.shape), "0", "-") for t in self.inputs]
        for layer in self._layers:
            shape = layer.output_shape
            rows.append((f"{layer.name} ({type(layer).__name__})", str((None, *shape)), f"{layer.count_params():,}", ", ".join(connected[id(layer)])))
        return rows, ("Layer (type)", "Output Shape", "Param #", "Connected to")

    def summary(self, print_fn=None):
        """Print each layer's name, type, output shape, parameter count (and, for a graph, its inputs)."""
        self._require_built("summary")
        print_fn = print_fn or print
        rows, headers = self._summary_rows()
        widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]

        def line(cells):
            parts = [cell.rjust(widths[i]) if i == 2 else cell.ljust(widths[i]) for i, cell in enumerate(cells)]
            return "  ".join(parts).rstrip()

        header = line(headers)
        rule = "=" * max(len(header), max(len(line(row)) for row in rows))
        print_fn(f'Model: "{self.name}"')
        print_fn(rule)
        print_fn(header)
        print_fn(rule)
        for row in rows:
            print_fn(line(row))
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

    def export(self, filepath, format="onnx"):
        """Write the model for use outside Python (``format="onnx"``: see `fastdnn.export.onnx`)."""
        export.export_model(self, filepath, format)

    def save_weights(self, path):
        """Write only the weights (see `load_weights`)."""
        saving.save_weights(self, path)

    def load_weights(self, path):
        """Set the weights from a file written by `save_weights` or `save`, after checking every shape."""
        saving.load_weights(self, path)

    def compile_config(self):
        """What `compile` was given, in saveable form (for `fastdnn.saving`)."""
        return {
            "optimizer": self.optimizer.get_config(),
            "losses": [loss.get_config() for loss in self._losses],
            "loss_weights": list(self.loss_weights),
            "metrics": self._metric_lists_given,
        }

    def get_config(self):
        """The graph: input declarations, layer configs, and each call's sources as ``[layer, call]``."""
        calls = {}
        where = {id(t): [t.name, 0] for t in self.inputs}
        nodes = []
        for node in self._nodes:
            index = calls.get(id(node.layer), 0)
            calls[id(node.layer)] = index + 1
            nodes.append([node.layer.name, [where[id(t)] for t in node.inputs]])
            where[id(node.output)] = [node.layer.name, index]
        return {
            "name": self.name,
            "inputs": [{"name": t.name, "shape": list(t.sample_shape)} for t in self.inputs],
            "layers": [layers_module.serialize(layer) for layer in self._layers],
            "nodes": nodes,
            "outputs": [where[id(t)] for t in self.outputs],
            "input_names": self._input_keys,
            "output_names": self._output_keys,
        }

    @classmethod
    def from_config(cls, config_, custom_objects=None):
        """Rebuild the graph of `get_config` with fresh layers (new weights); ``custom_objects`` maps
        class names to a user's own layer classes."""
        layers = {}
        for entry in config_["layers"]:
            layer_config = dict(entry.get("config", {}))
            layer_config.pop("input_shape", None)
            layer = layers_module.get({"class_name": entry["class_name"], "config": layer_config}, custom_objects)
            layers[layer.name] = layer
        produced = {}
        inputs = []
        for spec in config_["inputs"]:
            tensor = graph.Input(tuple(spec["shape"]), name=spec["name"])  # in the current floatx
            produced[(spec["name"], 0)] = tensor
            inputs.append(tensor)
        calls = {}
        for layer_name, sources in config_["nodes"]:
            layer = layers[layer_name]
            tensors = [produced[(name, index)] for name, index in sources]
            output = layer(tensors if layer.multiple_inputs else tensors[0])
            index = calls.get(layer_name, 0)
            calls[layer_name] = index + 1
            produced[(layer_name, index)] = output
        outputs = [produced[(name, index)] for name, index in config_["outputs"]]
        if config_.get("input_names"):
            inputs = dict(zip(config_["input_names"], inputs))
        if config_.get("output_names"):
            outputs = dict(zip(config_["output_names"], outputs))
        return cls(inputs, outputs, name=config_.get("name"))


class Sequential(Model):
    """A linear stack of layers: the graph whose nodes form a chain.

    Parameters
    ----------
    layers : list of Layer, optional
        The layers, first to last; the first may be ``fd.Input(shape)`` or carry ``input_shape``.
    name : str, optional
    """

    def __init__(self, layers=None, name=None):
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name: expected a non-empty string, received {validation.describe(name)}")
        self._init_state(name or "sequential")
        self._input_shape = None
        self._input_dtype = None
        self._declared_input = None
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"layers: expected a list of layers, received {validation.describe(layers)}")
            for layer in layers:
                self.add(layer)

    def add(self, layer):
        """Append a layer (an input declaration is only accepted first)."""
        if isinstance(layer, graph.SymbolicTensor):
            if not layer.is_input:
                raise TypeError(f"layer: expected a fastdnn.layers.Layer or fd.Input(shape), received the output of layer {layer.node.layer.name!r}")
            declared, dtype = layer.node.layer, layer.dtype
        elif isinstance(layer, layers_module.InputLayer):
            declared, dtype = layer, None
        elif isinstance(layer, layers_module.Layer):
            declared = None
        else:
            raise TypeError(f"layer: expected a fastdnn.layers.Layer, received {validation.describe(layer)}")
        if declared is None and layer.multiple_inputs:
            raise TypeError(f"layer: {layer.name!r} ({type(layer).__name__}) takes several inputs; use fd.Model(inputs, outputs)")
        # Adding to a built model re-plans at the next use (built layers keep their weights).
        self.built = False
        if declared is not None:
            if self._layers or self._input_shape is not None:
                raise ValueError("layer: an Input can only be the first entry of a Sequential model")
            self._input_shape = declared.input_shape
            self._declared_input = declared.name
            self._input_dtype = dtype
            return
        if not self._layers and self._input_shape is None and layer.input_shape is not None:
            self._input_shape = layer.input_shape
        self._layers.append(layer)

    @property
    def layers(self):
        return list(self._layers)

    def _buildable(self):
        return self._input_shape is not None and bool(self._layers)

    def _output_count(self):
        return 1

    def _known_output_names(self):
        return None

    def build(self, input_shape=None):
        """Create every layer's parameters for inputs of sample shape ``input_shape`` and chain them."""
        if input_shape is not None:
            input_shape = validation.shape_tuple(input_shape, "input_shape")
            if self._input_shape is not None and input_shape != self._input_shape:
                raise ValueError(f"input_shape: the model was declared with {self._input_shape}, received {input_shape}")
            self._input_shape = input_shape
        if self._input_shape is None:
            raise ValueError("input_shape: unknown; give the first layer input_shape=..., start with fd.Input(shape), or call fit/predict")
        if not self._layers:
            raise ValueError("layers: the model has no layers")
        dtype = np.dtype(config.floatx())
        shape = self._input_shape
        for layer in self._layers:
            if layer.built and layer.input_shape != shape:
                raise ValueError(f"layer {layer.name!r} was built for input {layer.input_shape}, but receives {shape}")
            shape = layer.compute_output_shape(shape) if not layer.built else layer.output_shape
        shape = self._input_shape
        for layer in self._layers:
            if not layer.built:
                layer.build(shape, dtype)
            shape = layer.output_shape
        input_tensor = graph.Input(self._input_shape, name=self._declared_input or f"{self.name}_input", dtype=self._input_dtype)
        tensor = input_tensor
        for layer in self._layers:
            tensor = graph.Node(layer, (tensor,), layer.output_shape, layer.dtype).output
        self.inputs, self.outputs = [input_tensor], [tensor]
        self._input_keys = self._output_keys = None
        self.input_names = [input_tensor.name]
        self.output_names = [self._layers[-1].name]
        self._nodes = [t.node for t in _chain(tensor)]
        self._plan_graph()

    def _require_built(self, method):
        if not self.built:
            if self._input_shape is None:
                raise RuntimeError(
                    f"{method}: the model is not built yet; give the first layer input_shape=..., start with "
                    f"fd.Input(shape), or call fit/predict first"
                )
            self.build()

    def _summary_rows(self):
        rows = [(f"{layer.name} ({type(layer).__name__})", str((None, *layer.output_shape)), f"{layer.count_params():,}") for layer in self._layers]
        return rows, ("Layer (type)", "Output Shape", "Param #")

    def get_config(self):
        config_ = {"name": self.name, "layers": [layers_module.serialize(layer) for layer in self._layers]}
        if self._input_shape is not None:
            config_["input_shape"] = list(self._input_shape)
        return config_

    @classmethod
    def from_config(cls, config_, custom_objects=None):
        model = cls([layers_module.get(entry, custom_objects) for entry in config_["layers"]], name=config_.get("name"))
        if config_.get("input_shape") is not None and model._input_shape is None:
            model._input_shape = validation.shape_tuple(config_["input_shape"], "input_shape")
        return model


def _chain(last):
    """The tensors of a chain, first computed to ``last``."""
    tensors = []
    while not last.is_input:
        tensors.append(last)
        last = last.node.inputs[0]
    return tensors[::-1]


def _listed(value):
    return value if isinstance(value, list) else [value]


def _unique(names):
    """Names made unique with ``_1``, ``_2`` suffixes (one layer may produce two outputs)."""
    seen, result = {}, []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        result.append(name if count == 0 else f"{name}_{count}")
    return result


def _unique_layers(layers):
    seen, result = set(), []
    for layer in layers:
        if id(layer) not in seen:
            seen.add(id(layer))
            result.append(layer)
    return result


def _is_single_loss(value):
    """Whether ``value`` names one loss (a name, a Loss, or a loss config dict with a ``"name"``)."""
    return isinstance(value, (str, losses.Loss)) or (isinstance(value, dict) and isinstance(value.get("name"), str) and value.get("name") in losses.registry)


def _per_output(value, argument, count, names, is_single, broadcast=True):
    """One entry per output from one value (given to every output), a list, or a dict by output name."""
    if is_single(value) or value is None:
        if not broadcast and count > 1:
            raise TypeError(f"{argument}: expected a list or a dict by output name for a model with {count} outputs, received {validation.describe(value)}")
        return [value] * count
    if isinstance(value, dict):
        if names is None:
            if count == 1:
                raise ValueError(f"{argument}: a dict by output name needs a model with named outputs; received keys {list(value)}")
        unknown = [key for key in value if key not in (names or [])]
        missing = [name for name in (names or []) if name not in value]
        if unknown or missing:
            raise ValueError(f"{argument}: expected an entry for each output {names}; unknown {unknown}, missing {missing}")
        return [value[name] for name in names]
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{argument}: expected {count} entries (one per output), received {len(value)}")
        return list(value)
    raise TypeError(f"{argument}: expected one entry, a list or a dict by output name, received {validation.describe(value)}")


saving.register_model_class("Sequential", Sequential)
saving.register_model_class("Functional", Model)
