"""Pooling layers (channels last): max and average over windows (1-D, 2-D) and over whole samples."""

import numpy as np

from fastdnn import threads, validation
from fastdnn.kernels.cpu import pool as pool_kernels
from fastdnn.layers.base import Layer, registry
from fastdnn.layers.conv import channels_last, spatial_output


class _Pooling(Layer):
    """Max or average over windows of ``pool_size`` moved by ``strides`` (see `MaxPooling2D`)."""

    rank = None
    kind = None  # "max" or "average"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = validation.int_tuple(pool_size, "pool_size", self.rank)
        self.strides = self.pool_size if strides is None else validation.int_tuple(strides, "strides", self.rank)
        self.padding = validation.choice(padding, "padding", ("valid", "same"))
        self.data_format = channels_last(data_format)

    def _spatial(self, input_shape):
        return spatial_output(self, input_shape, self.rank, self.pool_size, self.strides, (1,) * self.rank, self.padding)

    def compute_output_shape(self, input_shape):
        spatial, _ = self._spatial(input_shape)
        return (*spatial, input_shape[-1])

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        spatial, pads = self._spatial(self.input_shape)
        one = (1,) * (2 - self.rank)
        zero = (0,) * (2 - self.rank)
        self._input_2d = (*one, *self.input_shape)
        self._output_2d = (*one, *self.output_shape)
        ph, pw = (*one, *self.pool_size)
        sh, sw = (*one, *self.strides)
        pad_top, pad_left = (*zero, *pads)
        self._geometry = (ph, pw, sh, sw, pad_top, pad_left)
        if self.kind == "average":
            # 1 / (real input positions per window): padded positions do not count (as in Keras).
            H, W = self._input_2d[:2]
            oh, ow = self._output_2d[:2]
            rows = np.clip(np.arange(oh) * sh - pad_top + ph, 0, H) - np.clip(np.arange(oh) * sh - pad_top, 0, H)
            cols = np.clip(np.arange(ow) * sw - pad_left + pw, 0, W) - np.clip(np.arange(ow) * sw - pad_left, 0, W)
            self._inv_count = (1.0 / np.outer(rows, cols)).astype(self.dtype)

    # samples are independent: they run as parts of the batch under a pool plan (threads.split_batch)
    def _forward_samples(self, x4, y):
        if self.kind == "max":
            return lambda lo, hi, _: pool_kernels.max_pool_forward(x4[lo:hi], *self._geometry, y[lo:hi])
        return lambda lo, hi, _: pool_kernels.avg_pool_forward(x4[lo:hi], *self._geometry, self._inv_count, y[lo:hi])

    def _backward_samples(self, x4, y, g, dX):
        if self.kind == "max":
            return lambda lo, hi, _: pool_kernels.max_pool_backward(x4[lo:hi], y[lo:hi], g[lo:hi], *self._geometry, dX[lo:hi])
        return lambda lo, hi, _: pool_kernels.avg_pool_backward(g[lo:hi], *self._geometry, self._inv_count, dX[lo:hi])

    def forward(self, x, training=False):
        n = x.shape[0]
        x4 = x.reshape(n, *self._input_2d)
        y = self.buffer("y", (n, *self._output_2d))
        threads.split_batch(n, self._forward_samples(x4, y))
        if training:
            self._cache = (x4, y)
        return y.reshape(n, *self.output_shape)

    def backward(self, dLdY):
        if not self.compute_input_grad:
            return None
        x4, y = self._cache
        n = x4.shape[0]
        g = dLdY.reshape(n, *self._output_2d)
        dX = self.buffer("dx", x4.shape)
        threads.split_batch(n, self._backward_samples(x4, y, g, dX))
        return dX.reshape(n, *self.input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "data_format": self.data_format,
        }


@registry.register("maxpooling1d", "maxpool1d")
class MaxPooling1D(_Pooling):
    """Maximum over windows of ``pool_size`` steps of inputs ``(batch, steps, channels)``; see `MaxPooling2D`."""

    rank = 1
    kind = "max"


@registry.register("maxpooling2d", "maxpool2d")
class MaxPooling2D(_Pooling):
    """Maximum over ``pool_size`` windows of inputs ``(batch, height, width, channels)``, channel by channel.

    Parameters
    ----------
    pool_size : int or (int, int)
        Window size (default 2).
    strides : int, (int, int) or None
        Window step; ``None`` (default) is ``pool_size``.
    padding : "valid" or "same"
        With ``"same"`` the windows also cover a border (output ``ceil(L / s)``), whose positions take
        no part in the maximum.
    data_format : None or "channels_last"

    The gradient of each output goes to the (first) position of its window's maximum.
    """

    rank = 2
    kind = "max"


@registry.register("averagepooling1d", "avgpool1d")
class AveragePooling1D(_Pooling):
    """Mean over windows of ``pool_size`` steps of inputs ``(batch, steps, channels)``; see `AveragePooling2D`."""

    rank = 1
    kind = "average"


@registry.register("averagepooling2d", "avgpool2d")
class AveragePooling2D(_Pooling):
    """Mean over ``pool_size`` windows of inputs ``(batch, height, width, channels)``, channel by channel.

    Arguments as `MaxPooling2D`. With ``padding="same"`` a border window averages only its real
    positions (as Keras does); its gradient is shared equally among them.
    """

    rank = 2
    kind = "average"


class _GlobalPooling(Layer):
    """Max or mean over every axis between the batch and the channels."""

    rank = None
    kind = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = channels_last(data_format)
        self.keepdims = validation.boolean(keepdims, "keepdims")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != self.rank + 1:
            axes = "(steps, channels)" if self.rank == 1 else "(height, width, channels)"
            raise ValueError(
                f"input_shape: {type(self).__name__} {self.name!r} expects samples of shape {axes}, received {tuple(input_shape)}"
            )
        return (*(1,) * self.rank, input_shape[-1]) if self.keepdims else (input_shape[-1],)

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        self._positions = int(np.prod(self.input_shape[:-1]))
        self._channels = self.input_shape[-1]
        self._inv_count = self.dtype.type(1.0 / self._positions)

    def forward(self, x, training=False):
        n = x.shape[0]
        x3 = x.reshape(n, self._positions, self._channels)
        y = self.buffer("y", (n, self._channels))
        if self.kind == "max":
            pool_kernels.global_max_forward(x3, y)
        else:
            pool_kernels.global_avg_forward(x3, self._inv_count, y)
        if training:
            self._cache = (x3, y)
        return y.reshape(n, *self.output_shape)

    def backward(self, dLdY):
        if not self.compute_input_grad:
            return None
        x3, y = self._cache
        n = x3.shape[0]
        g = dLdY.reshape(n, self._channels)
        dX = self.buffer("dx", x3.shape)
        if self.kind == "max":
            pool_kernels.global_max_backward(x3, y, g, self.buffer("pending", (self._channels,)), dX)
        else:
            pool_kernels.global_avg_backward(g, self._inv_count, dX)
        return dX.reshape(n, *self.input_shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


@registry.register("globalmaxpooling1d", "globalmaxpool1d")
class GlobalMaxPooling1D(_GlobalPooling):
    """Maximum over the steps of inputs ``(batch, steps, channels)``: output ``(batch, channels)``
    (``(batch, 1, channels)`` with ``keepdims=True``)."""

    rank = 1
    kind = "max"


@registry.register("globalmaxpooling2d", "globalmaxpool2d")
class GlobalMaxPooling2D(_GlobalPooling):
    """Maximum over height and width of inputs ``(batch, height, width, channels)``: output
    ``(batch, channels)`` (``(batch, 1, 1, channels)`` with ``keepdims=True``)."""

    rank = 2
    kind = "max"


@registry.register("globalaveragepooling1d", "globalavgpool1d")
class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over the steps of inputs ``(batch, steps, channels)``: output ``(batch, channels)``."""

    rank = 1
    kind = "average"


@registry.register("globalaveragepooling2d", "globalavgpool2d")
class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over height and width of inputs ``(batch, height, width, channels)``: output ``(batch, channels)``."""

    rank = 2
    kind = "average"


# Keras's short names.
MaxPool1D, MaxPool2D = MaxPooling1D, MaxPooling2D
AvgPool1D, AvgPool2D = AveragePooling1D, AveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
