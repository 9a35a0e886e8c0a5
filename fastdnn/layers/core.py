"""Core layers: Input, Dense, Activation."""

import numpy as np

from fastdnn import activations, initializers, validation
from fastdnn.kernels.cpu import activation as activation_kernels
from fastdnn.kernels.cpu import dense as dense_kernels
from fastdnn.layers.base import Layer, registry


@registry.register("inputlayer")
class InputLayer(Layer):
    """Declares the sample shape of a model's input; has no parameters and is not run.

    ``fd.layers.Input(shape=(64,))`` as the first entry of ``Sequential`` is the same as giving the
    first layer ``input_shape=(64,)``.
    """

    def __init__(self, shape=None, name=None, input_shape=None):
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise TypeError("shape: expected the sample shape of the input (without batch axis), received None")
        super().__init__(name=name, input_shape=shape)

    def get_config(self):
        return {"name": self.name, "shape": list(self.input_shape)}


def Input(shape, name=None, dtype=None):
    """A model input (Keras's ``keras.Input``): a symbolic tensor of sample shape ``shape``.

    The input of ``fd.Model(inputs, outputs)``, or the first entry of a `Sequential` (the same as
    giving the first layer ``input_shape=shape``). See `fastdnn.graph.Input`.
    """
    from fastdnn import graph

    return graph.Input(shape, name=name, dtype=dtype)


class _ActivationMixin:
    """Shared by layers that end in an activation: keeping ``z`` and the fused-loss entry point."""

    def _init_activation(self, activation):
        self.activation = activations.get(activation)
        #: Set by a model that fuses this layer's softmax/sigmoid with the loss: keep the logits.
        self.keep_logits = False

    def _separate_preactivation(self):
        """Whether ``z`` gets a buffer apart from ``y``: when it is kept (logits are kept in inference
        too, so that evaluate computes a fused loss the same way), and for any activation but linear,
        whose kernel vectorizes only out of place (see ``kernels.cpu.activation._build_forward``)."""
        return self.keep_logits or self.activation.code != activation_kernels.LINEAR

    @property
    def logits(self):
        """Pre-activation ``z`` of the last forward pass (kept only when ``keep_logits``)."""
        return self._logits


@registry.register("dense")
class Dense(_ActivationMixin, Layer):
    """Fully connected layer: ``y = f(x W + b)`` over the last axis of ``x``.

    Parameters
    ----------
    units : int
        Size of the output's last axis, ``n_out``.
    activation : str, ActivationFunction or None
        ``f``; ``None`` is linear.
    use_bias : bool
        Whether to add ``b``.
    kernel_initializer, bias_initializer : str or Initializer
        How ``W`` (``n_in x n_out``) and ``b`` (``n_out``) start.
    **kwargs
        ``name``, ``input_shape``, ``trainable`` (see `Layer`).

    Notes
    -----
    Backward, with ``dL/dz = dL/dy * f'(z)``: ``dL/dW = x^T dL/dz``, ``dL/db`` is the sum over the
    batch of ``dL/dz``, and ``dL/dx = dL/dz W^T``.
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = validation.positive_int(units, "units")
        self._init_activation(activation)
        self.use_bias = validation.boolean(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer, "kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, "bias_initializer")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        self.n_in = self.input_shape[-1]
        self.add_weight("W", (self.n_in, self.units), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("b", (self.units,), self.bias_initializer)
        self._no_bias = np.empty(0, dtype=self.dtype)
        self._empty_2d = np.empty((0, 0), dtype=self.dtype)

    def _bias(self, store):
        return store["b"] if self.use_bias else self._no_bias

    def forward(self, x, training=False):
        x2 = x.reshape(-1, self.n_in)
        n = x2.shape[0]
        y = self.buffer("y", (n, self.units))
        z = self.buffer("z", (n, self.units)) if self._separate_preactivation() else y
        act = self.activation
        dense_kernels.dense_forward(x2, self.params["W"], self._bias(self.params), act.code, act.alpha_as(self.dtype), z, y)
        self._logits = z
        if training:
            self._cache = (x2, z, y, x.shape)
        return y.reshape(*x.shape[:-1], self.units)

    def backward(self, dLdY):
        return self._backward(dLdY, self.activation.code)

    def backward_from_logits(self, dLdZ):
        """Backward when the loss already gave ``dL/dz`` (softmax/sigmoid fused with crossentropy)."""
        return self._backward(dLdZ, activation_kernels.LINEAR)

    def _backward(self, gradient, code):
        x2, z, y, x_shape = self._cache
        n = x2.shape[0]
        g2 = gradient.reshape(n, self.units)
        dLdZ = self.buffer("dz", (n, self.units)) if code != activation_kernels.LINEAR else g2
        dX = self.buffer("dx", (n, self.n_in)) if self.compute_input_grad else self._empty_2d
        dense_kernels.dense_backward(
            x2,
            self.params["W"],
            z,
            y,
            g2,
            code,
            self.activation.alpha_as(self.dtype),
            dLdZ,
            self.grads["W"],
            self._bias(self.grads),
            dX,
            self.compute_input_grad,
        )
        return dX.reshape(x_shape) if self.compute_input_grad else None

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation.get_config(),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }


@registry.register("activation")
class Activation(_ActivationMixin, Layer):
    """Applies an activation elementwise (softmax: over the last axis); no parameters.

    Parameters
    ----------
    activation : str or ActivationFunction
    **params : activation parameters, e.g. ``Activation("leaky_relu", negative_slope=0.1)``
    """

    def __init__(self, activation, name=None, input_shape=None, trainable=True, **params):
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        self._init_activation(activations.get(activation, **params))

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        self._no_bias = np.empty(0, dtype=self.dtype)  # the activation kernel's bias argument: none

    def forward(self, x, training=False):
        z2 = x.reshape(-1, x.shape[-1])
        y = self.buffer("y", z2.shape)
        act = self.activation
        activation_kernels.FORWARD[act.code](z2, self._no_bias, act.alpha_as(self.dtype), y)
        self._logits = z2
        if training:
            self._cache = (z2, y, x.shape)
        return y.reshape(x.shape)

    def backward(self, dLdY):
        if not self.compute_input_grad:
            return None
        z2, y, x_shape = self._cache
        g2 = dLdY.reshape(y.shape)
        dLdX = self.buffer("dx", y.shape)
        act = self.activation
        activation_kernels.BACKWARD[act.code](z2, y, g2, act.alpha_as(self.dtype), dLdX)
        return dLdX.reshape(x_shape)

    def backward_from_logits(self, dLdZ):
        """The loss gave ``dL/dz`` and ``z`` is this layer's input: pass it through."""
        return dLdZ if self.compute_input_grad else None

    def get_config(self):
        return {**super().get_config(), "activation": self.activation.get_config()}
