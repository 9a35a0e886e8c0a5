"""Conv1D and Conv2D on the device: im2col + GEMM + fused bias/activation, as the CPU layer runs them."""

from fastdnn.device_layers import DeviceLayer, register


@register("Conv1D", "Conv2D")
class ConvOnDevice(DeviceLayer):
    """``y = f(im2col(x) W + b)`` (a 1-D convolution is a 2-D one of height 1; see `fastdnn.layers.conv`).

    The patch matrix stays in a reused device buffer from forward to backward, where it is the
    ``x`` of ``dL/dW``. As the output layer fused with its loss, `logits` gives ``z``.
    """

    def forward(self, x, params, training):
        layer = self.layer
        n = int(x.shape[0])
        rows = n * layer._positions
        x4 = x.reshape(n, *layer._input_2d)
        cols = self.buffer("cols", (rows, layer._patch))
        y = self.buffer("y", (rows, layer.filters))
        keep = layer.keep_logits or (training and layer.activation.needs_preactivation)
        z = self.buffer("z", (rows, layer.filters)) if keep else y
        act = layer.activation
        W = params["W"].reshape(layer._patch, layer.filters)
        bias = params["b"] if layer.use_bias else self.engine._empty
        self.k.conv.conv_forward(x4, W, bias, act.code, act.alpha_as(self.dtype), *layer._geometry, cols, z, y)
        self._cache = (cols, z, y, n)
        return y.reshape(n, *layer.output_shape)

    def logits(self):
        return self._cache[1]

    def backward(self, dLdY, params, grads, from_logits):
        layer = self.layer
        cols, z, y, n = self._cache
        linear = self.k.activation.LINEAR
        code = linear if from_logits else layer.activation.code
        g2 = dLdY.reshape(*z.shape)
        dLdZ = self.buffer("dz", z.shape) if code != linear else g2
        if layer.compute_input_grad:
            dcols = self.buffer("dcols", cols.shape)
            dX = self.buffer("dx", (n, *layer._input_2d))
        else:
            dcols, dX = self.engine._empty_2d, self._empty_4d()
        bias = grads["b"] if layer.use_bias else self.engine._empty
        self.k.conv.conv_backward(
            cols, params["W"].reshape(layer._patch, layer.filters), z, y, g2, code, layer.activation.alpha_as(self.dtype),
            *layer._geometry, dLdZ, grads["W"].reshape(layer._patch, layer.filters), bias, dcols, dX,
            layer.compute_input_grad,
        )
        return dX.reshape(n, *layer.input_shape) if layer.compute_input_grad else None

    def _empty_4d(self):
        """The (0, 0, 0, 0) stand-in for ``dX`` when no input gradient is computed."""
        return self.buffer("no_dx", (0, 0, 0, 0))
