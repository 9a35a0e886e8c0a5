"""Convolution layers (channels last): Conv1D and Conv2D, computed as im2col + one BLAS product (or,
with one input channel and strides of 1, directly over padded planes)."""

import numpy as np

from fastdnn import initializers, threads, validation
from fastdnn.kernels.cpu import activation as activation_kernels
from fastdnn.kernels.cpu import conv as conv_kernels
from fastdnn.layers.base import Layer, registry
from fastdnn.layers.core import _ActivationMixin


def channels_last(data_format):
    """Only Keras's default layout is supported: ``None`` or ``"channels_last"``."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f"data_format: only 'channels_last' (the default) is supported, received {data_format!r}")
    return "channels_last"


def padding_amounts(length, size, stride, dilation, padding):
    """``(before, output length)`` along one axis by Keras's rules.

    ``valid``: ``out = floor((L - eff) / s) + 1`` with ``eff = (size - 1) d + 1``, no padding;
    ``same``: ``out = ceil(L / s)``, total padding ``max((out - 1) s + eff - L, 0)``, the smaller half
    first (the rest falls after the input); ``causal``: ``eff - 1`` before, ``out = ceil(L / s)``.
    """
    eff = (size - 1) * dilation + 1
    if padding == "valid":
        return 0, (length - eff) // stride + 1
    out = -(-length // stride)
    if padding == "causal":
        return eff - 1, out
    return max((out - 1) * stride + eff - length, 0) // 2, out


def spatial_output(layer, input_shape, rank, sizes, strides, dilations, padding):
    """Output lengths and leading paddings of the ``rank`` spatial axes, with a clear error when the
    window does not fit into a "valid" input."""
    if len(input_shape) != rank + 1:
        axes = "(steps, channels)" if rank == 1 else "(height, width, channels)"
        raise ValueError(
            f"input_shape: {type(layer).__name__} {layer.name!r} expects samples of shape {axes}, received {tuple(input_shape)}"
        )
    outputs, pads = [], []
    for axis in range(rank):
        pad, out = padding_amounts(input_shape[axis], sizes[axis], strides[axis], dilations[axis], padding)
        if out < 1:
            eff = (sizes[axis] - 1) * dilations[axis] + 1
            raise ValueError(
                f"input_shape: {type(layer).__name__} {layer.name!r} with a window of {eff} and padding='valid' "
                f"needs at least {eff} positions along spatial axis {axis}, received {input_shape[axis]}"
            )
        outputs.append(out)
        pads.append(pad)
    return tuple(outputs), tuple(pads)


class _Conv(_ActivationMixin, Layer):
    """A convolution over ``rank`` spatial axes: ``y = f(conv(x, W) + b)`` (see `Conv2D`)."""

    rank = None
    paddings = ("valid", "same")

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = validation.positive_int(filters, "filters")
        self.kernel_size = validation.int_tuple(kernel_size, "kernel_size", self.rank)
        self.strides = validation.int_tuple(strides, "strides", self.rank)
        self.padding = validation.choice(padding, "padding", self.paddings)
        self.data_format = channels_last(data_format)
        self.dilation_rate = validation.int_tuple(dilation_rate, "dilation_rate", self.rank)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"dilation_rate: strides > 1 and dilation_rate > 1 cannot be combined (as in Keras), received "
                f"strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        self._init_activation(activation)
        self.use_bias = validation.boolean(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)

    def compute_output_shape(self, input_shape):
        spatial, _ = spatial_output(self, input_shape, self.rank, self.kernel_size, self.strides, self.dilation_rate, self.padding)
        return (*spatial, self.filters)

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        spatial, pads = spatial_output(
            self, self.input_shape, self.rank, self.kernel_size, self.strides, self.dilation_rate, self.padding
        )
        self.channels = self.input_shape[-1]
        self.add_weight("W", (*self.kernel_size, self.channels, self.filters), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("b", (self.filters,), self.bias_initializer)
        # Everything as 2-D: a 1-D convolution is one of height 1.
        pad = (1,) * (2 - self.rank)
        self._input_2d = (*pad, *self.input_shape[:-1], self.channels)
        kh, kw = (*pad, *self.kernel_size)
        sh, sw = (*pad, *self.strides)
        dh, dw = (*pad, *self.dilation_rate)
        pad_top, pad_left = ((0,) * (2 - self.rank)) + pads
        oh, ow = (*pad, *spatial)
        self._geometry = (kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow)
        self._patch = kh * kw * self.channels
        self._positions = oh * ow
        # One input channel, strides of 1: a direct convolution over padded planes beats the thin
        # im2col product (see kernels.cpu.conv, "one input channel").
        self._by_planes = self.channels == 1 and sh == 1 and sw == 1
        plane_width = ow + (kw - 1) * dw
        self._plane = (oh + (kh - 1) * dh) * plane_width
        self._plane_outputs = (oh - 1) * plane_width + ow
        self._no_bias = np.empty(0, dtype=self.dtype)
        self._empty_2d = np.empty((0, 0), dtype=self.dtype)
        self._empty_4d = np.empty((0, 0, 0, 0), dtype=self.dtype)

    def _bias(self, store):
        return store["b"] if self.use_bias else self._no_bias

    def forward(self, x, training=False):
        n = x.shape[0]
        rows = n * self._positions
        x4 = x.reshape(n, *self._input_2d)
        y = self.buffer("y", (rows, self.filters))
        z = self.buffer("z", (rows, self.filters)) if self._separate_preactivation() else y
        act = self.activation
        W = self.params["W"].reshape(self._patch, self.filters)
        if self._by_planes:
            # ``cols`` holds the padded planes here: what the backward pass reads in either layout
            kh, kw, _, _, dh, dw, pad_top, pad_left, oh, ow = self._geometry
            cols = self.buffer("planes", (n, self._plane))
            conv_kernels.conv_forward_planes(
                x4, W, self._bias(self.params), act.code, act.alpha_as(self.dtype), kh, kw, dh, dw, pad_top, pad_left, oh, ow,
                cols, self._plane_scratch(n), z, y,
            )
        else:
            cols = self.buffer("cols", (rows, self._patch))
            conv_kernels.conv_forward(x4, W, self._bias(self.params), act.code, act.alpha_as(self.dtype), *self._geometry, cols, z, y)
        self._logits = z
        if training:
            self._cache = (cols, z, y, n)
        return y.reshape(n, *self.output_shape)

    def _plane_scratch(self, n):
        """One sample's output planes (or their gradient), for each part of the batch (`threads.split_batch`)."""
        return self.buffer("plane_outputs", (threads.part_count(n), self.filters, self._plane_outputs))

    def backward(self, dLdY):
        return self._backward(dLdY, self.activation.code)

    def backward_from_logits(self, dLdZ):
        """Backward when the loss already gave ``dL/dz`` (softmax/sigmoid fused with crossentropy)."""
        return self._backward(dLdZ, activation_kernels.LINEAR)

    def _backward(self, gradient, code):
        cols, z, y, n = self._cache
        g2 = gradient.reshape(z.shape)
        dLdZ = self.buffer("dz", z.shape) if code != activation_kernels.LINEAR else g2
        if self.compute_input_grad:
            dcols = self.buffer("dcols", (z.shape[0], self._patch))
            dX = self.buffer("dx", (n, *self._input_2d))
        else:
            dcols, dX = self._empty_2d, self._empty_4d
        W = self.params["W"].reshape(self._patch, self.filters)
        dW = self.grads["W"].reshape(self._patch, self.filters)
        alpha = self.activation.alpha_as(self.dtype)
        if self._by_planes:
            sums = self.buffer("plane_sums", (threads.part_count(n), self._patch + 1, self.filters))
            conv_kernels.conv_backward_planes(
                cols, W, z, y, g2, code, alpha, *self._geometry, self._plane_scratch(n), sums, dLdZ, dW, self._bias(self.grads),
                dcols, dX, self.compute_input_grad,
            )
        else:
            conv_kernels.conv_backward(
                cols, W, z, y, g2, code, alpha, *self._geometry, dLdZ, dW, self._bias(self.grads), dcols, dX, self.compute_input_grad
            )
        return dX.reshape(n, *self.input_shape) if self.compute_input_grad else None

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate),
            "activation": self.activation.get_config(),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
        }


@registry.register("conv1d")
class Conv1D(_Conv):
    """1-D convolution over inputs of shape ``(batch, steps, channels)``; the kernel is ``(k, channels, filters)``.

    Parameters as `Conv2D`, with single integers for ``kernel_size``, ``strides`` and
    ``dilation_rate``, and ``padding`` also ``"causal"`` (``eff - 1`` zeros before the input only, so
    that output ``t`` sees inputs up to ``t``).
    """

    rank = 1
    paddings = ("valid", "same", "causal")


@registry.register("conv2d")
class Conv2D(_Conv):
    """2-D convolution over inputs of shape ``(batch, height, width, channels)``.

    ``z[b, oy, ox, f] = sum_{i, j, c} x[b, oy sh - pt + i dh, ox sw - pl + j dw, c] W[i, j, c, f] + b[f]``,
    ``y = f(z)``, with zeros outside the input. Computed as one matrix product of the patch matrix
    (im2col) with ``W`` reshaped to ``(kh kw C, filters)``, or with one input channel and strides of 1
    directly over zero-padded sample planes; see ``fastdnn.kernels.cpu.conv``.

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size : int or (int, int)
    strides : int or (int, int)
    padding : "valid" or "same"
        ``"valid"``: no padding (output ``floor((L - k) / s) + 1``); ``"same"``: zeros around the
        input, the smaller half first, so that the output is ``ceil(L / s)``.
    data_format : None or "channels_last"
    dilation_rate : int or (int, int)
        Spacing of the kernel taps; cannot be combined with strides > 1.
    activation : str, ActivationFunction or None
    use_bias : bool
    kernel_initializer, bias_initializer : str or Initializer
        Keras's defaults: ``glorot_uniform`` (fans include the receptive field) and ``zeros``.
    """

    rank = 2


def conv_output_length(length, size, stride=1, padding="valid", dilation=1):
    """Output length of a convolution or pooling along one axis (Keras's ``compute_conv_output_shape``)."""
    return padding_amounts(length, size, stride, dilation, padding)[1]

