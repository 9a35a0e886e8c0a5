"""Dense, Activation, Flatten and Reshape on the device."""

from fastdnn.device_layers import DeviceLayer, register


@register("Dense")
class DenseOnDevice(DeviceLayer):
    """``y = f(x W + b)`` with the tiled GEMM (or cuBLAS), bias and activation fused as on the CPU."""

    def forward(self, x, params, training):
        layer = self.layer
        shape = tuple(x.shape)  # a plain tuple: the simulator's shapes take no negative index
        x2 = x.reshape(-1, layer.n_in)
        n = x2.shape[0]
        y = self.buffer("y", (n, layer.units))
        keep = layer.keep_logits or (training and layer.activation.needs_preactivation)
        z = self.buffer("z", (n, layer.units)) if keep else y
        act = layer.activation
        bias = params["b"] if layer.use_bias else self.engine._empty
        self.k.dense.dense_forward(x2, params["W"], bias, act.code, act.alpha_as(self.dtype), z, y)
        self._cache = (x2, z, y, shape)
        return y.reshape(*shape[:-1], layer.units)

    def logits(self):
        return self._cache[1]

    def backward(self, dLdY, params, grads, from_logits):
        layer = self.layer
        x2, z, y, x_shape = self._cache
        n = x2.shape[0]
        linear = self.k.activation.LINEAR
        code = linear if from_logits else layer.activation.code
        g2 = dLdY.reshape(n, layer.units)
        dLdZ = self.buffer("dz", (n, layer.units)) if code != linear else g2
        dX = self.buffer("dx", (n, layer.n_in)) if layer.compute_input_grad else self.engine._empty_2d
        bias = grads["b"] if layer.use_bias else self.engine._empty
        self.k.dense.dense_backward(
            x2, params["W"], z, y, g2, code, layer.activation.alpha_as(self.dtype),
            dLdZ, grads["W"], bias, dX, layer.compute_input_grad,
        )
        return dX.reshape(x_shape) if layer.compute_input_grad else None


@register("Activation")
class ActivationOnDevice(DeviceLayer):
    """``y = f(x)`` over the last axis (softmax couples it)."""

    def forward(self, x, params, training):
        shape = tuple(x.shape)
        z2 = x.reshape(-1, shape[-1])
        y = self.buffer("y", z2.shape)
        act = self.layer.activation
        self.k.activation.activation_forward(act.code, z2, act.alpha_as(self.dtype), y)
        self._cache = (z2, y, shape)
        return y.reshape(shape)

    def logits(self):
        return self._cache[0]

    def backward(self, dLdY, params, grads, from_logits):
        z2, y, x_shape = self._cache
        if not self.layer.compute_input_grad:
            return None
        if from_logits:
            return dLdY  # the loss gave dL/dz, and z is this layer's input
        dLdX = self.buffer("dx", y.shape)
        act = self.layer.activation
        self.k.activation.activation_backward(act.code, z2, y, dLdY.reshape(y.shape), act.alpha_as(self.dtype), dLdX)
        return dLdX.reshape(x_shape)


@register("Flatten", "Reshape")
class ReshapeOnDevice(DeviceLayer):
    """A new view of the same device memory (both layers only reshape)."""

    def forward(self, x, params, training):
        self._shape = tuple(x.shape)
        return x.reshape(self._shape[0], *self.layer.output_shape)

    def backward(self, dLdY, params, grads, from_logits):
        return dLdY.reshape(self._shape) if self.layer.compute_input_grad else None
