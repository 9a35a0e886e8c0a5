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

from fastdnn import config
from fastdnn.device_metrics import DeviceMetrics

DEVICES = ("cpu", "cuda")
#: The kernel modules of each family (``fastdnn/kernels/cpu/<name>.py`` and its CUDA twin).
FAMILIES = ("activation", "dense", "loss", "optim", "data", "conv", "pool", "recurrent", "embedding", "dropout", "normalization", "metric")



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
    if engine is None or engine.layers != tuple(model._layers):
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
    without one with a ValueError naming it. Data-parallel (MPI) training is CPU-only for now.
    """

    def __init__(self, model):
        from fastdnn import device_layers

        unsupported = unsupported_cuda_layers(model._layers)
        if unsupported:
            raise ValueError(
                f"device: 'cuda' runs {', '.join(device_layers.supported_names())} layers so far; this model also has "
                f"{', '.join(unsupported)}; compile with device='cpu'"
            )
        if model._parallel.size != 1:
            raise ValueError("device: 'cuda' does not support data-parallel (MPI) training yet; use device='cpu'")
        from numba import cuda

        self._cuda = cuda
        self.k = kernels("cuda")
        self.model = model
        self.layers = tuple(model._layers)
        self.handlers = [device_layers.handler_for(layer)(self, index, layer) for index, layer in enumerate(self.layers)]
        self._store = None
        self._pool = _DevicePool()
        self._resident = None
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
        self.grads = cuda.device_array(store.grads.shape, dtype=store.grads.dtype)
        self.offsets = cuda.to_device(store.offsets)
        self._empty = cuda.device_array(0, dtype=model.dtype)
        self._empty_2d = cuda.device_array((0, 0), dtype=model.dtype)
        where = {(id(layer), name): (int(a), int(b)) for (layer, name), a, b in zip(store.variables, store.offsets[:-1], store.offsets[1:])}
        self.views = []  # per layer: ({name: device param}, {name: device grad}, [(device, host) to upload])
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
            self.views.append((params, grads, uploads))

    def push_params(self):
        """Copy the host parameters (the source of truth between calls) to the device.

        Not during an epoch (a callback's ``predict`` between batches), when the device copy is newer.
        """
        if self._in_epoch:
            return
        self._layout()
        self.params.copy_to_device(self._store.params)
        for _, _, uploads in self.views:
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

    def _resident_data(self, x, flat_x, targets):
        """Device copies of the whole training set, or None when it does not fit.

        Kept from epoch to epoch while ``fit`` passes the same ``x`` and ``targets`` objects, and
        dropped when ``fit`` ends (`release_data`), so a later ``fit`` never sees stale values.
        """
        if self._resident is not None and self._resident[0] is x and self._resident[1] is targets:
            return self._resident[2:]
        self._resident = None
        if not self._fits(flat_x.nbytes + targets.nbytes):
            return None
        self._resident = (x, targets, self._cuda.to_device(flat_x), self._cuda.to_device(targets))
        return self._resident[2:]

    def release_data(self):
        """Free the device copy of the training set (the end of ``fit``)."""
        self._resident = None

    # -- one pass ----------------------------------------------------------------------------------

    def _forward(self, x, training):
        """Forward through every layer on the device; ``x`` is a device array (n, *input_shape)."""
        out = x
        for handler, (params, _, _) in zip(self.handlers, self.views):
            out = handler.forward(out, params, training)
        return out.reshape(-1, self.model.output_shape[-1])

    def _logits(self):
        """Pre-activation of the output layer (for a loss fused with its softmax/sigmoid)."""
        return self.handlers[-1].logits().reshape(-1, self.model.output_shape[-1])

    def _loss(self, y_pred, tb, grad, with_grad):
        model = self.model
        loss = model.loss
        if model._fused:
            kernel, inputs = loss.logits_kernel, self._logits()
        else:
            kernel, inputs = (loss.logits_kernel if loss.from_logits else loss.kernel), y_pred
        return getattr(self.k.loss, kernel.__name__)(inputs, tb, grad, with_grad)

    def _backward(self, output_grad):
        gradient = output_grad
        last = len(self.handlers) - 1
        for index in range(last, -1, -1):
            params, grads, _ = self.views[index]
            from_logits = index == last and self.model._fused
            gradient = self.handlers[index].backward(gradient, params, grads, from_logits)
            if gradient is None:
                return

    def loss_and_gradients(self, xb, tb):
        """Mean loss of a device batch, with its gradient left in the flat device buffer ``grads``
        (not when the loss is non-finite). Returns ``(loss, predictions on the device)``.
        """
        y_pred = self._forward(xb, training=True)
        grad = self._pool.get("dloss", y_pred.shape, self.model.dtype)
        loss_value = self._loss(y_pred, tb, grad, True)
        if np.isfinite(loss_value):
            self._backward(grad.reshape(xb.shape[0], *self.model.output_shape))
        return loss_value, y_pred

    def train_step(self, xb, tb):
        """Forward, loss, backward and one optimizer step on device batch arrays; returns the mean loss.

        A non-finite loss skips the step, as on the CPU.
        """
        loss_value, y_pred = self.loss_and_gradients(xb, tb)
        if np.isfinite(loss_value):
            self.model.optimizer.step(self.params, self.grads, self.offsets)
        return loss_value, y_pred

    def train_epoch(self, x, targets, batch_size, shuffle, hooks):
        """`Sequential._train_epoch` on the device: same shuffling, logs, hooks and failure report."""
        from fastdnn import random
        from fastdnn.kernels.cpu.data import take_rows as host_take_rows

        model = self.model
        n = x.shape[0]
        order = random.generator().permutation(n) if shuffle else None
        flat_x = x.reshape(n, -1)
        self.push_params()
        resident = self._resident_data(x, flat_x, targets)
        rows = min(batch_size, n)
        if resident is not None and order is not None:
            d_order = self._cuda.to_device(order)
        elif resident is None:
            host_x = model._pool.get("x", (rows, flat_x.shape[1]), x.dtype)
            host_t = model._pool.get("t", (rows, targets.shape[1]), targets.dtype)
        for metric in model.metrics:
            metric.reset_state()
        metrics = DeviceMetrics(self, model.metrics, model.loss.sparse)
        loss_sum, seen, logs = 0.0, 0, {}
        self._attach_optimizer()
        self._in_epoch = True
        try:
            for batch, start in enumerate(range(0, n, batch_size)):
                stop = min(start + batch_size, n)
                count = stop - start
                if resident is not None:
                    d_x, d_t = resident
                    if order is None:
                        xb, tb = d_x[start:stop], d_t[start:stop]
                    else:
                        xb = self._pool.get("xb", (count, flat_x.shape[1]), x.dtype)
                        tb = self._pool.get("tb", (count, targets.shape[1]), targets.dtype)
                        self.k.data.take_rows(d_x, d_order[start:stop], xb)
                        self.k.data.take_rows(d_t, d_order[start:stop], tb)
                else:  # streamed: gather on the host, one copy per batch
                    if order is None:
                        hx, ht = flat_x[start:stop], targets[start:stop]
                    else:
                        hx, ht = host_x[:count], host_t[:count]
                        host_take_rows(flat_x, order[start:stop], hx)
                        host_take_rows(targets, order[start:stop], ht)
                    xb, tb = self._cuda.to_device(np.ascontiguousarray(hx)), self._cuda.to_device(np.ascontiguousarray(ht))
                hooks.on_train_batch_begin(batch)
                kernel_targets = model._kernel_targets(tb)
                loss_value, y_pred = self.train_step(xb.reshape(count, *x.shape[1:]), kernel_targets)
                if not np.isfinite(loss_value):
                    metrics.publish()
                    return model._logs(loss_sum / max(seen, 1)), (batch, loss_value)
                if model.metrics:
                    rows = slice(start, stop) if order is None else order[start:stop]
                    metrics.update(y_pred, kernel_targets, lambda: model._kernel_targets(targets[rows]))
                loss_sum += loss_value * count
                seen += count
                if hooks.wants_batch_logs:
                    metrics.publish()
                    logs = model._logs(loss_sum / seen)
                hooks.on_train_batch_end(batch, logs)
                if model.stop_training:
                    break
            metrics.publish()
            return model._logs(loss_sum / max(seen, 1)), None
        finally:
            self._in_epoch = False
            self._detach_optimizer()
            self.pull_params()

    # -- inference -------------------------------------------------------------------------------

    def predict(self, x, batch_size):
        """Outputs for host ``x`` as a NumPy array (chunks of ``batch_size`` rows)."""
        model = self.model
        n = x.shape[0]
        self.push_params()
        result = np.empty((n, *model.output_shape), dtype=model.dtype)
        flat = result.reshape(n, -1)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            xb = self._cuda.to_device(np.ascontiguousarray(x[start:stop]))
            flat[start:stop] = self._forward(xb, training=False).copy_to_host().reshape(stop - start, -1)
        return result

    def evaluate(self, x, targets, batch_size):
        """Loss and metrics over host arrays in kernel form (`Sequential._evaluate_arrays` on the device)."""
        model = self.model
        self.push_params()
        for metric in model.metrics:
            metric.reset_state()
        metrics = DeviceMetrics(self, model.metrics, model.loss.sparse)
        loss_sum = 0.0
        for start in range(0, x.shape[0], batch_size):
            stop = min(start + batch_size, x.shape[0])
            host_t = model._kernel_targets(targets[start:stop])
            xb = self._cuda.to_device(np.ascontiguousarray(x[start:stop]))
            tb = self._cuda.to_device(np.ascontiguousarray(host_t))
            y_pred = self._forward(xb, training=False)
            loss_sum += self._loss(y_pred, tb, y_pred, False) * (stop - start)
            if model.metrics:
                metrics.update(y_pred, tb, lambda: host_t)
        metrics.publish()
        return model._logs(loss_sum / x.shape[0])
