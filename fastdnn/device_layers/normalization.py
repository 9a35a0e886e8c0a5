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

    Synchronized under data parallel (``layer.synchronizes``), the CPU layer's scheme: the shard's
    float64 per-feature sums are taken on the device, staged through a host buffer for the layer's
    ``allreduce_sum`` (2C + 1 numbers forward, 2C backward), and the rows are normalized with the
    global statistics on the device. With ``synchronized=False`` the engine averages the device moving
    statistics over the ranks after each step (`replicated_state`).
    """

    def __init__(self, engine, index, layer):
        super().__init__(engine, index, layer)
        self._moving = None
        self._host = {}

    def _allreduce(self, key, sums):
        """Sum the device vector ``sums`` over the ranks, through a page-locked host copy."""
        host = self._host.get(key)
        if host is None or host.shape != sums.shape:
            host = self._host[key] = self.engine._cuda.pinned_array(sums.shape, dtype=sums.dtype)
        sums.copy_to_host(host)
        self.layer.shard.parallel.allreduce_sum(host)
        sums.copy_to_device(host)
        return host

    def replicated_state(self):
        """The device moving statistics when the ranks keep their own (``layer.replicated_state``), else ()."""
        if not self.layer.replicated_state:
            return ()
        if self._moving is None:
            self.push_state()
        return (self._moving["moving_mean"], self._moving["moving_variance"])

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
        rows = m  # the rows the statistics are over: the global batch's when synchronized
        if batch_statistics and layer.synchronizes:
            sums = self.buffer("sums", (2 * C + 1,), np.float64)
            norm.batch_norm_shifted_sums(x2, moving_mean, sums)
            rows = int(self._allreduce("sums", sums)[2 * C])
            norm.batch_norm_global_forward(
                x2, sums, gamma, beta, layer._epsilon, layer._momentum, moving_mean, moving_var, mean, inv_std, x_hat, y
            )
        elif batch_statistics and m:
            norm.batch_norm_train_forward(
                x2, gamma, beta, self.dtype.type(1.0 / m), layer._epsilon, layer._momentum,
                moving_mean, moving_var, mean, inv_std, x_hat, y,
            )
        elif not batch_statistics:
            norm.batch_norm_frozen_forward(x2, gamma, beta, layer._epsilon, moving_mean, moving_var, mean, inv_std, x_hat, y)
        # (an empty shard of a rank with its own statistics has nothing to normalize)
        self._cache = (x_hat, inv_std, batch_statistics, shape, rows)
        return y.reshape(shape)

    def backward(self, dLdY, params, grads, from_logits):
        layer = self.layer
        x_hat, inv_std, batch_statistics, x_shape, rows = self._cache
        C = layer._features
        m = x_hat.shape[0]
        dgamma, dbeta = self._affine(grads)
        compute_dx = layer.compute_input_grad
        dX = self.buffer("dx", (m, C)) if compute_dx else x_hat[:0]
        g2 = dLdY.reshape(m, C)
        if batch_statistics and (layer.synchronizes or not m):
            # this shard's dL/dbeta and dL/dgamma (the step's allreduce adds the shards'); an empty shard's are 0
            sums = self.buffer("gradient_sums", (2 * C,), np.float64)
            self.k.normalization.batch_norm_gradient_sums(x_hat, g2, sums)
            for target, part in ((dbeta, sums[:C]), (dgamma, sums[C:])):
                if target.shape[0]:
                    self.k.merge.copy(part, target)  # float64 sums rounded into the parameter dtype, as on the CPU
            if not compute_dx:
                return None
            if layer.synchronizes:
                self._allreduce("gradient_sums", sums)
                self.k.normalization.batch_norm_global_backward(
                    x_hat, inv_std, self._affine(params)[0], g2, sums, 1.0 / rows, self.buffer("factor", (C,)), dX
                )
            return dX.reshape(x_shape)
        self.k.normalization.batch_norm_backward(
            x_hat, inv_std, self._affine(params)[0], g2, self.dtype.type(1.0 / max(m, 1)), batch_statistics,
            self.buffer("sum_g", (C,)), self.buffer("sum_gx", (C,)), self.buffer("factor", (C,)),
            dgamma, dbeta, dX, compute_dx,
        )
        return dX.reshape(x_shape) if compute_dx else None
