"""Pooling layers on the device: max and average over windows (1-D, 2-D) and over whole samples."""

from fastdnn.device_layers import DeviceLayer, register


@register("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D")
class PoolingOnDevice(DeviceLayer):
    """Windowed max or average pooling, the input viewed as ``(n, H, W, C)`` (height 1 in 1-D).

    The layer's per-window ``1 / count`` table (average pooling) goes to the device once.
    """

    def forward(self, x, params, training):
        layer = self.layer
        n = int(x.shape[0])
        x4 = x.reshape(n, *layer._input_2d)
        y = self.buffer("y", (n, *layer._output_2d))
        if layer.kind == "max":
            self.k.pool.max_pool_forward(x4, *layer._geometry, y)
        else:
            self.k.pool.avg_pool_forward(x4, *layer._geometry, self._inv_count(), y)
        self._cache = (x4, y, n)
        return y.reshape(n, *layer.output_shape)

    def backward(self, dLdY, params, grads, from_logits):
        layer = self.layer
        if not layer.compute_input_grad:
            return None
        x4, y, n = self._cache
        g = dLdY.reshape(n, *layer._output_2d)
        dX = self.buffer("dx", (n, *layer._input_2d))
        if layer.kind == "max":
            self.k.pool.max_pool_backward(x4, y, g, *layer._geometry, dX)
        else:
            self.k.pool.avg_pool_backward(g, *layer._geometry, self._inv_count(), dX)
        return dX.reshape(n, *layer.input_shape)

    def _inv_count(self):
        device = getattr(self, "_device_inv_count", None)
        if device is None:
            from numba import cuda

            device = self._device_inv_count = cuda.to_device(self.layer._inv_count.astype(self.dtype))
        return device


@register("GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D")
class GlobalPoolingOnDevice(DeviceLayer):
    """Max or mean over every axis between the batch and the channels, the input viewed as ``(n, S, C)``."""

    def forward(self, x, params, training):
        layer = self.layer
        n = int(x.shape[0])
        x3 = x.reshape(n, layer._positions, layer._channels)
        y = self.buffer("y", (n, layer._channels))
        if layer.kind == "max":
            self.k.pool.global_max_forward(x3, y)
        else:
            self.k.pool.global_avg_forward(x3, self._scale(), y)
        self._cache = (x3, y, n)
        return y.reshape(n, *layer.output_shape)

    def backward(self, dLdY, params, grads, from_logits):
        layer = self.layer
        if not layer.compute_input_grad:
            return None
        x3, y, n = self._cache
        g = dLdY.reshape(n, layer._channels)
        dX = self.buffer("dx", x3.shape)
        if layer.kind == "max":
            self.k.pool.global_max_backward(x3, y, g, self.buffer("pending", (layer._channels,)), dX)
        else:
            self.k.pool.global_avg_backward(g, self._scale(), dX)
        return dX.reshape(n, *layer.input_shape)

    def _scale(self):
        """``1 / S`` in the model's dtype (the kernels multiply in the array dtype, as on the CPU)."""
        return self.dtype.type(1.0 / self.layer._positions)
