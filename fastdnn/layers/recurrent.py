"""Recurrent layers: SimpleRNN, LSTM and GRU over inputs ``(batch, steps, features)``, trained by
backpropagation through time. Equations and buffer layout: ``fastdnn.kernels.cpu.recurrent``.

Weights follow Keras 3: ``W`` (Keras's ``kernel``, ``(features, G units)``), ``U``
(``recurrent_kernel``, ``(units, G units)``, orthogonal at the start) and ``b`` (``bias``), with
``G`` gates (1, 4, 3) in Keras's order.

The activations are kept as ``cell_activation`` and ``recurrent_activation`` rather than
``activation``: a model fuses an output ``activation`` with its loss, which is only right when the
layer's output is that activation of a pre-activation (a Dense layer), not for these cells.
"""

import numpy as np

from fastdnn import activations, initializers, validation
from fastdnn.kernels.cpu import activation as activation_kernels
from fastdnn.kernels.cpu import recurrent as recurrent_kernels
from fastdnn.layers.base import Layer, registry

_UNSUPPORTED = activation_kernels.NEEDS_PREACTIVATION | {activation_kernels.SOFTMAX}


def _cell_activation(identifier, name):
    """An activation whose derivative follows from its output (what the recurrent kernels use)."""
    function = activations.get(identifier)
    if function.code in _UNSUPPORTED:
        supported = sorted(n for n, f in activations.registry.canonical_items() if f.code not in _UNSUPPORTED)
        raise ValueError(f"{name}: recurrent layers support {', '.join(supported)}; received {function.name!r}")
    return function


class _Recurrent(Layer):
    """Shared by SimpleRNN, LSTM and GRU: arguments, shapes, buffers; subclasses run the kernels."""

    gates = 1

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        return_sequences=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = validation.positive_int(units, "units")
        self.cell_activation = _cell_activation(activation, "activation")
        self.use_bias = validation.boolean(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.return_sequences = validation.boolean(return_sequences, "return_sequences")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"input_shape: {type(self).__name__} {self.name!r} expects samples of shape (steps, features), "
                f"received {tuple(input_shape)}"
            )
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        self.steps, self.features = self.input_shape
        width = self.gates * self.units
        self.add_weight("W", (self.features, width), self.kernel_initializer)
        self.add_weight("U", (self.units, width), self.recurrent_initializer)
        self._build_bias()
        self._empty_1d = np.empty(0, dtype=self.dtype)
        self._empty_3d = np.empty((0, 0, 0), dtype=self.dtype)
        self._act = (self.cell_activation.code, self.cell_activation.alpha_as(self.dtype))

    def _build_bias(self):
        if self.use_bias:
            self.add_weight("b", (self.gates * self.units,), self.bias_initializer)

    def _bias(self, store):
        return store["b"] if self.use_bias else self._empty_1d

    def _time_major(self, key, n, width):
        """A ``(T, n, width)`` buffer. Allocated flat, so a smaller last batch is a prefix view, not a new buffer."""
        T = self.steps
        return self.buffer(key, (T * n * width,)).reshape(T, n, width)

    def _states(self, key, n):
        return self.buffer(key, ((self.steps + 1) * n * self.units,)).reshape(self.steps + 1, n, self.units)

    def _output(self, n):
        return self.buffer("y", (n, self.steps if self.return_sequences else 1, self.units))

    def _returned(self, y):
        return y if self.return_sequences else y.reshape(y.shape[0], self.units)

    def _input_grad_buffers(self, n):
        if not self.compute_input_grad:
            return self._empty_3d, self._empty_3d
        return self._time_major("dxt", n, self.features), self.buffer("dx", (n, self.steps, self.features))

    def _upstream(self, dLdY, n):
        return dLdY.reshape(n, self.steps if self.return_sequences else 1, self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.cell_activation.get_config(),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "return_sequences": self.return_sequences,
        }


class _GatedRecurrent(_Recurrent):
    """LSTM and GRU: a second, ``recurrent_activation`` for the gates."""

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = _cell_activation(recurrent_activation, "recurrent_activation")

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        self._ract = (self.recurrent_activation.code, self.recurrent_activation.alpha_as(self.dtype))

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation.get_config()}


@registry.register("simplernn")
class SimpleRNN(_Recurrent):
    """Fully connected recurrence: ``h_t = f(x_t W + h_{t-1} U + b)``, ``h_0 = 0``.

    Parameters
    ----------
    units : int
    activation : str or ActivationFunction
        ``f`` (default ``"tanh"``); one whose derivative follows from its output.
    use_bias : bool
    kernel_initializer, recurrent_initializer, bias_initializer : str or Initializer
        Keras's defaults: ``glorot_uniform``, ``orthogonal``, ``zeros``.
    return_sequences : bool
        Output every state ``(batch, steps, units)`` rather than the last ``(batch, units)``.
    """

    def forward(self, x, training=False):
        n = x.shape[0]
        xt = self._time_major("xt", n, self.features)
        h = self._states("h", n)
        y = self._output(n)
        recurrent_kernels.simple_rnn_forward(
            x, self.params["W"], self.params["U"], self._bias(self.params), *self._act,
            xt, self.buffer("rec", (n, self.units)), h, y,
        )
        if training:
            self._cache = (xt, h, n)
        return self._returned(y)

    def backward(self, dLdY):
        xt, h, n = self._cache
        dxt, dX = self._input_grad_buffers(n)
        recurrent_kernels.simple_rnn_backward(
            xt, self.params["W"], self.params["U"], h, self._upstream(dLdY, n), *self._act,
            self.buffer("dh", (n, self.units)), self._time_major("dA", n, self.units),
            self.grads["W"], self.grads["U"], self._bias(self.grads), dxt, dX, self.compute_input_grad,
        )
        return dX if self.compute_input_grad else None


@registry.register("lstm")
class LSTM(_GatedRecurrent):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), Keras 3's formulation.

    Gates ``i, f, c, o`` (in that order along ``4 units``), with ``s`` the recurrent activation::

        i = s(a_i), f = s(a_f), g = act(a_c), o = s(a_o),   a = x_t W + h_{t-1} U + b
        c_t = f c_{t-1} + i g,   h_t = o act(c_t)

    Parameters
    ----------
    units : int
    activation, recurrent_activation : str or ActivationFunction
        Defaults ``"tanh"`` and ``"sigmoid"``.
    use_bias : bool
    kernel_initializer, recurrent_initializer, bias_initializer : str or Initializer
    unit_forget_bias : bool
        Start the forget gate's bias at 1 (default True, as in Keras).
    return_sequences : bool
    """

    gates = 4

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = validation.boolean(unit_forget_bias, "unit_forget_bias")

    def _build_bias(self):
        super()._build_bias()
        if self.use_bias and self.unit_forget_bias:
            self.params["b"][self.units : 2 * self.units] = 1

    def forward(self, x, training=False):
        n = x.shape[0]
        xt = self._time_major("xt", n, self.features)
        gates = self._time_major("gates", n, 4 * self.units)
        c, h = self._states("c", n), self._states("h", n)
        tc = self._time_major("tc", n, self.units)
        y = self._output(n)
        recurrent_kernels.lstm_forward(
            x, self.params["W"], self.params["U"], self._bias(self.params), *self._act, *self._ract,
            xt, self.buffer("rec", (n, 4 * self.units)), gates, c, h, tc, y,
        )
        if training:
            self._cache = (xt, gates, c, h, tc, n)
        return self._returned(y)

    def backward(self, dLdY):
        xt, gates, c, h, tc, n = self._cache
        dxt, dX = self._input_grad_buffers(n)
        recurrent_kernels.lstm_backward(
            xt, self.params["W"], self.params["U"], gates, c, h, tc, self._upstream(dLdY, n), *self._act, *self._ract,
            self.buffer("dh", (n, self.units)), self.buffer("dc", (n, self.units)), self._time_major("dA", n, 4 * self.units),
            self.grads["W"], self.grads["U"], self._bias(self.grads), dxt, dX, self.compute_input_grad,
        )
        return dX if self.compute_input_grad else None

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@registry.register("gru")
class GRU(_GatedRecurrent):
    """Gated recurrent unit (Cho et al. 2014), Keras 3's default form (``reset_after=True``).

    Gates ``z, r, h`` (in that order along ``3 units``); ``b`` is ``(2, 3 units)``: the input bias and
    the recurrent bias::

        u = x_t W + b[0],  v = h_{t-1} U + b[1]
        z = s(u_z + v_z),  r = s(u_r + v_r),  hh = act(u_h + r v_h)
        h_t = z h_{t-1} + (1 - z) hh

    Parameters
    ----------
    units : int
    activation, recurrent_activation : str or ActivationFunction
        Defaults ``"tanh"`` and ``"sigmoid"``.
    use_bias : bool
    kernel_initializer, recurrent_initializer, bias_initializer : str or Initializer
    return_sequences : bool
    reset_after : bool
        Only True (Keras 3's default, cuDNN-compatible) is implemented.
    """

    gates = 3

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        if reset_after is not True:
            raise ValueError(f"reset_after: only True (Keras 3's default) is supported, received {reset_after!r}")
        self.reset_after = True

    def _build_bias(self):
        if self.use_bias:
            self.add_weight("b", (2, 3 * self.units), self.bias_initializer)

    def _biases(self, store):
        if not self.use_bias:
            return self._empty_1d, self._empty_1d
        return store["b"][0], store["b"][1]

    def forward(self, x, training=False):
        n = x.shape[0]
        xt = self._time_major("xt", n, self.features)
        gates = self._time_major("gates", n, 3 * self.units)
        rh = self._time_major("rh", n, self.units)
        h = self._states("h", n)
        y = self._output(n)
        recurrent_kernels.gru_forward(
            x, self.params["W"], self.params["U"], *self._biases(self.params), *self._act, *self._ract,
            xt, self.buffer("rec", (n, 3 * self.units)), gates, rh, h, y,
        )
        if training:
            self._cache = (xt, gates, rh, h, n)
        return self._returned(y)

    def backward(self, dLdY):
        xt, gates, rh, h, n = self._cache
        dxt, dX = self._input_grad_buffers(n)
        recurrent_kernels.gru_backward(
            xt, self.params["W"], self.params["U"], gates, rh, h, self._upstream(dLdY, n), *self._act, *self._ract,
            self.buffer("dh", (n, self.units)), self.buffer("carry", (n, self.units)),
            self._time_major("dAx", n, 3 * self.units), self._time_major("dAr", n, 3 * self.units),
            self.grads["W"], self.grads["U"], *self._biases(self.grads), dxt, dX, self.compute_input_grad,
        )
        return dX if self.compute_input_grad else None

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}
