"""How each layer type runs on the CUDA device: one `DeviceLayer` subclass per layer class.

`backend.CudaEngine` walks a model's layers and hands each to the handler registered for its class
name. A handler runs the layer's forward and backward with the ``fastdnn.kernels.cuda`` twins of the
kernels its CPU layer calls, on device arrays; it keeps what backward needs on itself (one handler
per layer of a model) and moves any non-trainable state (moving statistics) between host and device.

Every module of this package is imported here, so a new layer family needs only its module.
"""

import importlib
import pkgutil

_HANDLERS = {}


def register(*class_names):
    """Class decorator: the handler of the layer classes named ``class_names``."""

    def decorate(cls):
        for name in class_names:
            _HANDLERS[name] = cls
        return cls

    return decorate


class DeviceLayer:
    """One layer of a model on the device (see the package docstring).

    Parameters
    ----------
    engine : backend.CudaEngine
        Gives the kernel family (``engine.k``), the buffer pool and the model.
    index : int
        The layer's position in the model (keys its reused buffers).
    layer : fastdnn.layers.Layer
        The built host layer: configuration, shapes, and the source of truth for its variables.
    """

    def __init__(self, engine, index, layer):
        self.engine = engine
        self.k = engine.k
        self.index = index
        self.layer = layer
        self.dtype = engine.model.dtype

    def buffer(self, key, shape, dtype=None):
        """A reused device buffer of this layer (grown to the largest batch, sliced for smaller)."""
        return self.engine._pool.get((self.index, key), shape, self.dtype if dtype is None else dtype)

    def forward(self, x, params, training):
        """The layer's output for the device batch ``x``; ``params`` maps names to device views."""
        raise NotImplementedError

    def backward(self, dLdY, params, grads, from_logits):
        """``dL/dx`` (a device array) from ``dL/dy``, writing the parameter gradients into ``grads``.

        Returns None when the layer's ``compute_input_grad`` is off. ``from_logits`` is True for the
        output layer when the loss already gave the gradient with respect to its pre-activation.
        """
        raise NotImplementedError

    def logits(self):
        """The pre-activation of the last forward (only for layers that can be a fused output)."""
        raise TypeError(f"layer {self.layer.name!r} has no pre-activation to fuse with the loss")

    def push_state(self):
        """Copy the host's non-trainable state to the device (nothing for most layers)."""

    def pull_state(self):
        """Copy the device's non-trainable state back to the host (nothing for most layers)."""


def handler_for(layer):
    """The `DeviceLayer` class of ``layer``, or None when its type does not run on the device."""
    return _HANDLERS.get(type(layer).__name__)


def supported_names():
    """The layer class names that run on the device, sorted."""
    return tuple(sorted(_HANDLERS))


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
