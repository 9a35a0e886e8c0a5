"""BatchNormalization on the device, its moving statistics kept in device copies between host syncs."""

import numpy as np

from fastdnn.device_layers import DeviceLayer, register


@register("BatchNormalization")
class BatchNormalizationOnDevice(DeviceLayer):
    """Batch statistics in training (moving ones updated on the device), moving ones in inference.

    As on the CPU: a layer with ``trainable=False`` normalizes with its moving statistics in
    training too (``batch_norm_frozen_forward``) and leaves them alone; the features are the last
    axis, every other axis is reduced. ``moving_mean`` / ``moving_variance`` (``layer.state``) live
    in device copies: `push_state` uploads the host's (start of an epoch, predict, evaluate), and
    `pull_state` writes them back into the host arrays after each training epoch.
    """

    def __init__(self, engine, index, layer):
        super().__init__(engine, index, layer)
        self._moving = None

    def push_state(self):
        cuda = self.engine._cuda
        state = self.layer.state
        if self._moving is None:
            self._moving = {name: cuda.to_device(np.ascontiguousarray(state[name])) for name in ("moving_mean", "moving_variance")}
        else:
            for name, device_array in self._moving.items():
                device_array.copy_to_device(np.ascontiguousarray(state[name]))

    def pull_state(self):
        if self._moving is None:
            return
        for name, device_array in self._moving.items():
            host = self.layer.state[name]
            if host.flags.c_contiguous:
                device_array.copy_to_host(host)  # in place: views and references of the host array stay valid
            else:
                host[...] = device_array.copy_to_host()

    def _affine(self, store):
        layer = self.layer
        return (store["gamma"] if layer.scale else self.engine._empty), (store["beta"] if layer.center else self.engine._empty)

    def forward(self, x, params, training):
        layer = self.layer
        if self._moving is None:
            self.push_state()
        C = layer._features
        shape = tuple(x.shape)
        x2 = x.reshape(-1, C)
        m = x2.shape[0]
        y = self.buffer("y", (m, C))
        gamma, beta = self._affine(params)
        moving_mean, moving_var = self._moving["moving_mean"], self._moving["moving_variance"]
        norm = self.k.normalization
        if not training:
            scale, shift = self.buffer("scale", (C,)), self.buffer("shift", (C,))
            norm.batch_norm_inference_forward(x2, gamma, beta, layer._epsilon, moving_mean, moving_var, scale, shift, y)
            return y.reshape(shape)
        mean, inv_std, x_hat = self.buffer("mean", (C,)), self.buffer("inv_std", (C,)), self.buffer("x_hat", (m, C))
        batch_statistics = layer.trainable
        if batch_statistics:
            norm.batch_norm_train_forward(
                x2, gamma, beta, self.dtype.type(1.0 / m), layer._epsilon, layer._momentum,
                moving_mean, moving_var, mean, inv_std, x_hat, y,
            )
        else:
            norm.batch_norm_frozen_forward(x2, gamma, beta, layer._epsilon, moving_mean, moving_var, mean, inv_std, x_hat, y)
        self._cache = (x_hat, inv_std, batch_statistics, shape)
        return y.reshape(shape)

    def backward(self, dLdY, params, grads, from_logits):
        layer = self.layer
        x_hat, inv_std, batch_statistics, x_shape = self._cache
        C = layer._features
        m = x_hat.shape[0]
        dgamma, dbeta = self._affine(grads)
        compute_dx = layer.compute_input_grad
        dX = self.buffer("dx", (m, C)) if compute_dx else x_hat[:0]
        self.k.normalization.batch_norm_backward(
            x_hat, inv_std, self._affine(params)[0], dLdY.reshape(m, C), self.dtype.type(1.0 / m), batch_statistics,
            self.buffer("sum_g", (C,)), self.buffer("sum_gx", (C,)), self.buffer("factor", (C,)),
            dgamma, dbeta, dX, compute_dx,
        )
        return dX.reshape(x_shape) if compute_dx else None
