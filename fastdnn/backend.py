"""Devices: which kernel family runs a model, where its arrays live, and the CUDA training engine.

``kernels(device)`` gives the family (``fastdnn.kernels.cpu`` or ``fastdnn.kernels.cuda``) as a
namespace with the same module and function names either way; ``to_device`` / ``empty`` / ``to_host``
allocate and move arrays. A model compiled with ``device="cuda"`` hands its epochs, evaluation and
prediction to `CudaEngine`: parameters, gradients and optimizer state stay in flat device buffers for
a whole epoch, the data is copied over once when it fits (else streamed batch by batch), and results
come back as NumPy arrays. Between epochs (and after ``fit``) the host copies are current, so
callbacks, ``get_weights``, saving and the divergence snapshot see the weights as on the CPU.
"""

import importlib
import os

import numpy as np

from fastdnn import config, graph
from fastdnn.device_metrics import DeviceMetrics

DEVICES = ("cpu", "cuda")
#: The kernel modules of each family (``fastdnn/kernels/cpu/<name>.py`` and its CUDA twin).
FAMILIES = ("activation", "dense", "loss", "optim", "data", "conv", "pool", "recurrent", "embedding", "dropout", "normalization", "merge", "metric")



def simulating():
    """True when numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1`` before numba was imported)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def cuda_unavailable_reason():
    """None when CUDA kernels can run here, else why not (for error messages)."""
    try:
        from numba import cuda
    except ImportError as error:
        return f"numba.cuda cannot be imported ({error}); install the cuda extra: pip install 'fastdnn[cuda]'"
    try:
        if cuda.is_available():
            return None
    except Exception as error:  # a broken driver raises instead of answering False
        return f"the CUDA driver failed ({type(error).__name__}: {error})"
    return "no CUDA GPU or driver was found (numba.cuda.is_available() is False; NUMBA_ENABLE_CUDASIM=1 runs the simulator)"


def cuda_available():
    return cuda_unavailable_reason() is None


def check_device(device, name="device"):
    """Validate a device name; for ``"cuda"`` also that it can run. Returns the name."""
    if device not in DEVICES:
        raise ValueError(f"{name}: expected one of {DEVICES}, received {device!r}")
    if device == "cuda":
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise ValueError(f"{name}: 'cuda' was asked for, but CUDA is unavailable: {reason}; use device='cpu'")
    return device


class _KernelFamily:
    """The modules of one kernel package as attributes, each imported on first use (so that a
    model compiles only the kernels of the layers it has)."""

    def __init__(self, package):
        self._package = package

    def __getattr__(self, family):
        if family not in FAMILIES:
            raise AttributeError(f"no kernel module {family!r}; expected one of {FAMILIES}")
        module = importlib.import_module(f"{self._package}.{family}")
        setattr(self, family, module)
        return module


def kernels(device):
    """The kernel family of ``device``: its modules (`FAMILIES`) as attributes, imported on first use."""
    check_device(device)
    return _KernelFamily("fastdnn.kernels.cpu" if device == "cpu" else "fastdnn.kernels.cuda")


def to_device(array, device):
    """``array`` (NumPy) on ``device``: itself for the CPU, a device copy for CUDA."""
    if device == "cpu":
        return np.ascontiguousarray(array)
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(array))


def empty(shape, dtype, device):
    """An uninitialized array on ``device``."""
    if device == "cpu":
        return np.empty(shape, dtype=dtype)
    from numba import cuda

    return cuda.device_array(shape, dtype=np.dtype(dtype))


def to_host(array):
    """A NumPy array of ``array``'s values (a copy for device arrays, the array itself otherwise)."""
    if isinstance(array, np.ndarray):
        return array
    return array.copy_to_host()


def unsupported_cuda_layers(layers):
    """Names of the layers the CUDA engine cannot run yet."""
    from fastdnn import device_layers

    return [f"{layer.name} ({type(layer).__name__})" for layer in layers if device_layers.handler_for(layer) is None]


def engine_for(model):
    """The model's `CudaEngine`, (re)created when its layers changed since the last call."""
    engine = getattr(model, "_cuda", None)
    if engine is None or engine.plan is not model._plan:
        engine = model._cuda = CudaEngine(model)
    return engine


class _DevicePool:
    """Reused device buffers per key, grown to the largest batch and sliced for smaller ones."""

    def __init__(self):
        self._stored = {}

    def get(self, key, shape, dtype):
        from numba import cuda

        shape = tuple(int(s) for s in shape)
        stored = self._stored.get(key)
        if stored is None or stored.dtype != dtype or stored.shape[1:] != shape[1:] or stored.shape[0] < shape[0]:
            stored = cuda.device_array(shape, dtype=dtype)
            self._stored[key] = stored
        return stored[: shape[0]]


class CudaEngine:
    """Runs a compiled `Sequential` on the GPU with the numba.cuda kernels (see the module docstring).

    Each layer runs through its `fastdnn.device_layers` handler; the constructor refuses a layer
    without one with a ValueError naming it. Under `fastdnn.distributed.data_parallel` each rank trains
    on its shard of every global batch on its own GPU, and the gradient buffer is summed over ranks each
    step (`fastdnn.device_parallel`).
    """

    def __init__(self, model):
        from fastdnn import device_layers

        unsupported = unsupported_cuda_layers(model._layers)
        if unsupported:
            raise ValueError(
                f"device: 'cuda' runs {', '.join(device_layers.supported_names())} layers so far; this model also has "
                f"{', '.join(unsupported)}; compile with device='cpu'"
            )
        from numba import cuda

        self._cuda = cuda
        self.k = kernels("cuda")
        self.model = model
        self.layers = tuple(model._layers)
        self.plan = model._plan
        # One handler per node (layer call): a shared layer's calls keep their own buffers and caches.
        self.handlers = [device_layers.handler_for(step.layer)(self, index, step.layer) for index, step in enumerate(self.plan)]
        self._store = None
        self._pool = _DevicePool()
        self._resident = None
        #: The per-step sum of the device gradients over data-parallel ranks (`fastdnn.device_parallel`).
        self.reduction_transport = None
        self._replicated = None  # host buffers of `_average_replicated_state`
        #: True while an epoch runs: the device parameters are then newer than the host's.
        self._in_epoch = False

    # -- parameters and optimizer state ----------------------------------------------------------

    def _layout(self):
        """(Re)create the flat device buffers and per-layer views when the model's store changed."""
        model = self.model
        store = model._store
        if self._store is store:
            return
        cuda = self._cuda
        self._store = store
        self.params = cuda.device_array(store.params.shape, dtype=store.params.dtype)
        # the gradients and one slot after them, as the host store's ``reduction``: one message per step
        self.reduction = cuda.device_array(store.reduction.shape, dtype=store.reduction.dtype)
        self.grads = self.reduction[:-1]
        self.reduction_transport = None
        self.offsets = cuda.to_device(store.offsets)
        self._empty = cuda.device_array(0, dtype=model.dtype)
        self._empty_2d = cuda.device_array((0, 0), dtype=model.dtype)
        where = {(id(layer), name): (int(a), int(b)) for (layer, name), a, b in zip(store.variables, store.offsets[:-1], store.offsets[1:])}
        self.views = {}  # per layer id: ({name: device param}, {name: device grad}, [(device, host) to upload])
        for layer in model._layers:
            params, grads, uploads = {}, {}, []
            for name, host in layer.params.items():
                span = where.get((id(layer), name))
                if span is not None:
                    params[name] = self.params[span[0] : span[1]].reshape(host.shape)
                    grads[name] = self.grads[span[0] : span[1]].reshape(host.shape)
                else:  # a frozen layer: its own device copy, and scratch for the gradient it is not stepped with
                    params[name] = cuda.device_array(host.shape, dtype=host.dtype)
                    grads[name] = cuda.device_array(host.shape, dtype=host.dtype)
                    uploads.append((params[name], host))
            self.views[id(layer)] = (params, grads, uploads)

    def push_params(self):
        """Copy the host parameters (the source of truth between calls) to the device.

        Not during an epoch (a callback's ``predict`` between batches), when the device copy is newer.
        """
        if self._in_epoch:
            return
        self._layout()
        self.params.copy_to_device(self._store.params)
        for _, _, uploads in self.views.values():
            for device_array, host in uploads:
                device_array.copy_to_device(np.ascontiguousarray(host))
        for handler in self.handlers:
            handler.push_state()

    def pull_params(self):
        self.params.copy_to_host(self._store.params)
        for handler in self.handlers:
            handler.pull_state()

    def _attach_optimizer(self):
        """Give the optimizer the CUDA step kernels and device copies of its state."""
        optimizer = self.model.optimizer
        self._host_state = optimizer.state
        optimizer.state = {name: self._cuda.to_device(values) for name, values in self._host_state.items()}
        self._host_empty, self._host_whole = optimizer._empty, optimizer._whole
        optimizer._empty = self._empty
        optimizer._whole = self._cuda.to_device(self._host_whole)
        optimizer._kernels = self.k.optim

    def _detach_optimizer(self, copy_back=True):
        optimizer = self.model.optimizer
        if copy_back:
            for name, values in optimizer.state.items():
                values.copy_to_host(self._host_state[name])
        optimizer.state = self._host_state
        optimizer._empty, optimizer._whole = self._host_empty, self._host_whole
        del optimizer._kernels

    # -- data ------------------------------------------------------------------------------------

    def _fits(self, nbytes):
        """Whether ``nbytes`` of training data may live on the device (half the free memory)."""
        limit = getattr(config, "CUDA_RESIDENT_BYTES", None)
        if limit is not None:
            return nbytes <= limit
        try:
            free, _ = self._cuda.current_context().get_memory_info()
        except Exception:  # the simulator has no memory info
            return True
        return nbytes <= free / 2  # true division: the simulator reports free=inf, and inf // 2 is nan

    def _resident_data(self, x, targets, flats):
        """Device copies of the whole training set (``flats``: every input, then every target, 2-D),
        or None when it does not fit.

        Kept from epoch to epoch while ``fit`` passes the same ``x`` and ``targets`` objects, and
        dropped when ``fit`` ends (`release_data`), so a later ``fit`` never sees stale values.
        """
        if self._resident is not None and self._resident[0] is x and self._resident[1] is targets:
            return self._resident[2]
        self._resident = None
        if not self._fits(sum(a.nbytes for a in flats)):
            return None
        self._resident = (x, targets, [self._cuda.to_device(a) for a in flats])
        return self._resident[2]

    def release_data(self):
        """Free the device copy of the training set (the end of ``fit``)."""
        self._resident = None

    # -- one pass ----------------------------------------------------------------------------------

    def _run_forward(self, xs, training):
        """Every slot's device value after a forward pass over the plan (``xs``: the device inputs)."""
        values = [None] * self.model._slot_count
        values[: len(xs)] = xs
        for step, handler in zip(self.plan, self.handlers):
            params = self.views[id(step.layer)][0]
            if step.layer.multiple_inputs:
                out = handler.forward([values[source] for source in step.sources], params, training)
            else:
                out = handler.forward(values[step.sources[0]], params, training)
            values[step.target] = out
        return values

    def _predictions(self, values):
        return [values[o.slot].reshape(values[o.slot].size // o.shape[-1], o.shape[-1]) for o in self.model._outputs]

    def _loss(self, k, y_pred, tb, grad, with_grad):
        output = self.model._outputs[k]
        loss = output.loss
        if output.fused:
            handler = self.handlers[output.slot - len(self.model.inputs)]
            kernel, inputs = loss.logits_kernel, handler.logits().reshape(*y_pred.shape)
        else:
            kernel, inputs = (loss.logits_kernel if loss.from_logits else loss.kernel), y_pred
        return getattr(self.k.loss, kernel.__name__)(inputs, tb, grad, with_grad)

    def _add_gradient(self, gradients, slot, gradient):
        """`Model._add_gradient` on the device: a tensor read by several nodes sums their gradients."""
        if self.model._consumers[slot] == 1:
            gradients[slot] = gradient
            return
        flat = gradient.reshape(gradient.size)
        current = gradients[slot]
        if current is None:
            buffer = self._pool.get(("grad", slot), (gradient.size,), self.model.dtype)
            self.k.merge.copy(flat, buffer)
            gradients[slot] = buffer.reshape(*gradient.shape)
        else:
            total = current.reshape(current.size)
            self.k.merge.combine(total, flat, self.k.merge.ADD, total)

    def _backward(self, gradients):
        model = self.model
        n_inputs = len(model.inputs)
        for index in range(len(self.plan) - 1, -1, -1):
            step, handler = self.plan[index], self.handlers[index]
            layer = step.layer
            if step.call is not None:
                layer.compute_input_grad = step.needs_input_grad
            params, grads, _ = self.views[id(layer)]
            if step.accumulate is not None:
                start, stop = step.accumulate
                kept = self._pool.get(("accumulate", id(layer)), (stop - start,), model.dtype)
                self.k.merge.copy(self.grads[start:stop], kept)
            result = handler.backward(gradients[step.target], params, grads, step.fused)
            if step.accumulate is not None:
                self.k.merge.combine(self.grads[start:stop], kept, self.k.merge.ADD, self.grads[start:stop])
            if step.needs_input_grad:
                graph.deliver(step, result, n_inputs, gradients, self._add_gradient)

    def loss_and_gradients(self, xb, tb, share=1.0, with_grad=True):
        """Mean (weighted) loss of device batches (one per input; targets one per output), with its
        gradient left in the flat device buffer ``grads`` (in one process, not when the loss is
        non-finite; nor with ``with_grad=False``: the training-mode forward pass and loss only, as
        finite differences need). ``share`` scales the gradient (not the loss): a data-parallel
        shard's weight in the global batch.
        Returns ``(loss, predictions on the device, each output's weighted loss)``.
        """
        model = self.model
        xs, ts = _listed(xb), _listed(tb)
        n = xs[0].shape[0]
        values = self._run_forward(xs, training=True)
        predictions = self._predictions(values)
        gradients = [None] * model._slot_count
        total, output_losses = 0.0, []
        for k, (output, y_pred, targets) in enumerate(zip(model._outputs, predictions, ts)):
            grad = self._pool.get(("dloss", k), y_pred.shape, model.dtype)
            value = self._loss(k, y_pred, targets, grad, with_grad)
            output_losses.append(output.weight * value)
            total += output.weight * value
            if not with_grad:
                continue
            scale = output.weight * share  # as on the CPU: one product, so both round alike
            if scale != 1.0:
                self.k.merge.scale(grad.reshape(grad.size), model.dtype.type(scale), grad.reshape(grad.size))
            self._add_gradient(gradients, output.slot, grad.reshape(n, *output.shape))
        # data parallel: every rank runs backward, whatever its loss, since layers there may meet the other
        # ranks in collectives (synchronized batch norm); a non-finite summed loss skips the step anyway
        if with_grad and (np.isfinite(total) or model._parallel.size > 1):
            self._backward(gradients)
        return total, predictions, output_losses

    def train_step(self, xb, tb, n_global=None, first_row=0):
        """Forward, loss, backward and one optimizer step on device batch arrays; returns
        ``(mean loss, device predictions, each output's weighted loss)``.

        ``n_global``: the global batch's size when ``xb`` is this rank's shard of it (data parallel),
        and ``first_row`` where the shard begins in it; the gradients are then summed over the ranks
        before the step, and the loss returned is the global batch's. A non-finite loss skips the
        step, as on the CPU.
        """
        model = self.model
        parallel = model._parallel
        n_local = _listed(xb)[0].shape[0]
        n_global = n_local if n_global is None else n_global
        shard = getattr(model, "_shard", None)
        if shard is not None:  # the layers that need the whole batch (batch norm, dropout) read it
            shard.first_row = first_row
        if n_local:
            loss_value, y_pred, output_losses = self.loss_and_gradients(xb, tb, parallel.share(n_local, n_global))
        else:  # more ranks than rows in this batch: contribute nothing
            self._empty_pass(xb)
            loss_value, y_pred, output_losses = 0.0, None, [0.0] * len(model._outputs)
        if parallel.size > 1:
            loss_value = self._transport().step(loss_value, n_local, n_global)
            self._average_replicated_state(parallel.share(n_local, n_global) if n_global else 0.0)
        if np.isfinite(loss_value):
            self.model.optimizer.step(self.params, self.grads, self.offsets)
        return loss_value, y_pred, output_losses

    def _empty_pass(self, xb):
        """`Trainer._empty_pass` on the device: forward and backward over zero rows, so that the layers
        that depend on the whole batch join its collectives and advance their random streams."""
        model = self.model
        if model._parallel.size == 1 or not any(getattr(layer, "shard", None) is not None for layer in model._layers):
            return
        self._run_forward(_listed(xb), training=True)
        gradients = [None] * model._slot_count
        for k, output in enumerate(model._outputs):
            gradients[output.slot] = self._pool.get(("empty dloss", k), (0, *output.shape), model.dtype)
        self._backward(gradients)

    def _average_replicated_state(self, share):
        """`Trainer._average_replicated_state` on the device: the moving statistics that each rank
        updates from its own shard, averaged over the ranks (weighted by shard size) through the host."""
        arrays = [array for handler in self.handlers for array in getattr(handler, "replicated_state", tuple)()]
        if not arrays:
            return
        total = sum(array.size for array in arrays)
        if self._replicated is None or self._replicated[0].size != total:
            self._replicated = (np.empty(total, dtype=np.float64), np.empty(total, dtype=arrays[0].dtype))
        summed, values = self._replicated
        position = 0
        for array in arrays:
            array.copy_to_host(values[position : position + array.size])
            position += array.size
        np.multiply(values, share, out=summed)  # as the CPU: float64 products of the float32 values
        self.model._parallel.allreduce_sum(summed)
        values[...] = summed
        position = 0
        for array in arrays:
            array.copy_to_device(values[position : position + array.size])
            position += array.size

    def _transport(self):
        """The `device_parallel.GradientReduction` of the current device buffers (made on first use)."""
        if self.reduction_transport is None or self.reduction_transport.parallel is not self.model._parallel:
            from fastdnn import device_parallel

            direct, _ = device_parallel.cuda_aware_mpi()
            self.reduction_transport = device_parallel.GradientReduction(self.model._parallel, self.reduction, direct)
        return self.reduction_transport

    def train_epoch(self, x, targets, batch_size, shuffle, hooks):
        """`Trainer._train_epoch` on the device: same shuffling, logs, hooks and failure report."""
        from fastdnn import random
        from fastdnn.kernels.cpu.data import take_rows as host_take_rows

        model = self.model
        parallel = model._parallel
        xs, ts = _listed(x), _listed(targets)
        n = xs[0].shape[0]
        order = parallel.broadcast_order(random.generator().permutation(n)) if shuffle else None
        flats = [a.reshape(n, -1) for a in xs] + list(ts)
        self.push_params()
        resident = self._resident_data(x, targets, flats)
        rows = min(batch_size, n)
        if resident is not None and order is not None:
            d_order = self._cuda.to_device(order)
        elif resident is None:
            hosts = [model._pool.get(("host", i), (rows, a.shape[1]), a.dtype) for i, a in enumerate(flats)]
        for metric in model.metrics:
            metric.reset_state()
        metrics = [DeviceMetrics(self, output.metrics, output.loss.sparse) for output in model._outputs]
        loss_sum, seen, logs = 0.0, 0, {}
        output_sums = np.zeros(len(ts))
        self._attach_optimizer()
        self._in_epoch = True
        try:
            for batch, start in enumerate(range(0, n, batch_size)):
                stop = min(start + batch_size, n)
                lo, hi = parallel.shard(start, stop)  # this rank's rows of the global batch (all of it alone)
                count = hi - lo
                if resident is not None:
                    if order is None:
                        batches = [d[lo:hi] for d in resident]
                    else:
                        batches = [self._pool.get(("batch", i), (count, d.shape[1]), d.dtype) for i, d in enumerate(resident)]
                        if count:
                            for d, b in zip(resident, batches):
                                self.k.data.take_rows(d, d_order[lo:hi], b)
                else:  # streamed: gather on the host, one copy per batch and array
                    if order is None:
                        parts = [a[lo:hi] for a in flats]
                    else:
                        parts = [h[:count] for h in hosts]
                        for a, h in zip(flats, parts):
                            host_take_rows(a, order[lo:hi], h)
                    batches = [self._cuda.to_device(np.ascontiguousarray(p)) for p in parts]
                hooks.on_train_batch_begin(batch)
                xb = [b.reshape(count, *a.shape[1:]) for b, a in zip(batches, xs)]
                tb = batches[len(xs):]
                kernel_targets = model._kernel_targets(model._unlisted(tb))
                loss_value, y_pred, output_losses = self.train_step(model._unlisted(xb), kernel_targets, stop - start, lo - start)
                if not np.isfinite(loss_value):
                    _publish(metrics)
                    return model._logs(loss_sum / max(seen, 1), output_sums / max(seen, 1)), (batch, loss_value)
                if model.metrics and count:
                    rows_taken = slice(lo, hi) if order is None else order[lo:hi]
                    for k, (output, predictions, device_targets) in enumerate(zip(model._outputs, y_pred, _listed(kernel_targets))):
                        if output.metrics:
                            metrics[k].update(predictions, device_targets, lambda k=k, output=output: _kernel_rows(output, ts[k][rows_taken]))
                loss_sum += loss_value * (stop - start)  # the global batch's mean loss
                output_sums += np.asarray(output_losses) * count  # this rank's rows, summed over ranks at the end
                seen += stop - start
                if hooks.wants_batch_logs:
                    _publish(metrics)
                    logs = model._logs(loss_sum / seen, output_sums / seen)
                hooks.on_train_batch_end(batch, logs)
                if model.stop_training:
                    break
            _publish(metrics)
            output_sums = np.asarray(model._reduce_metrics(list(output_sums)))  # and the metrics' counts
            return model._logs(loss_sum / max(seen, 1), output_sums / max(seen, 1)), None
        finally:
            self._in_epoch = False
            self._detach_optimizer()
            self.pull_params()

    # -- inference -------------------------------------------------------------------------------

    def predict(self, x, batch_size):
        """Outputs for host inputs (one array, or a list in the model's input order) as NumPy arrays
        (chunks of ``batch_size`` rows), shaped as `Trainer.predict` returns them."""
        model = self.model
        xs = _listed(x)
        n = xs[0].shape[0]
        self.push_params()
        results = [np.empty((n, *o.shape), dtype=model.dtype) for o in model._outputs]
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            batch = [self._cuda.to_device(np.ascontiguousarray(a[start:stop])) for a in xs]
            for result, y in zip(results, self._predictions(self._run_forward(batch, training=False))):
                result.reshape(n, -1)[start:stop] = y.copy_to_host().reshape(stop - start, -1)
        return model._unlisted(results, model._output_keys)

    def evaluate(self, x, targets, batch_size, parallel=None):
        """Loss and metrics over host arrays in kernel form (`Trainer._evaluate_arrays` on the device);
        with ``parallel``, over this rank's shard of the rows, then summed over ranks (fit's validation)."""
        model = self.model
        xs, ts = _listed(x), _listed(targets)
        n = xs[0].shape[0]
        lo, hi = (0, n) if parallel is None else parallel.shard(0, n)
        self.push_params()
        for metric in model.metrics:
            metric.reset_state()
        metrics = [DeviceMetrics(self, output.metrics, output.loss.sparse) for output in model._outputs]
        sums = np.zeros(len(ts))
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            batch = [self._cuda.to_device(np.ascontiguousarray(a[start:stop])) for a in xs]
            predictions = self._predictions(self._run_forward(batch, training=False))
            for k, (output, y_pred, rows) in enumerate(zip(model._outputs, predictions, ts)):
                host_t = _kernel_rows(output, rows[start:stop])
                tb = self._cuda.to_device(np.ascontiguousarray(host_t))
                sums[k] += output.weight * self._loss(k, y_pred, tb, y_pred, False) * (stop - start)
                if output.metrics:
                    metrics[k].update(y_pred, tb, lambda host_t=host_t: host_t)
        _publish(metrics)
        if parallel is not None:
            sums = np.asarray(model._reduce_metrics(list(sums)))
        sums /= n
        return model._logs(float(np.sum(sums)), sums)


def _listed(value):
    return value if isinstance(value, list) else [value]


def _publish(metrics):
    """Bring every output's device metric counts to its metric objects."""
    for output_metrics in metrics:
        output_metrics.publish()


def _kernel_rows(output, rows):
    """Host targets gathered per sample, as ``output``'s loss kernel takes them."""
    return rows.reshape(-1) if output.loss.sparse else rows.reshape(-1, output.shape[-1])
