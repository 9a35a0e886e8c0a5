"""BatchNormalization: batch statistics in training, moving statistics in inference."""

import numpy as np

from fastdnn import distributed, initializers, validation
from fastdnn.kernels.cpu import normalization as norm_kernels
from fastdnn.layers.base import Layer, registry


@registry.register("batchnormalization")
class BatchNormalization(Layer):
    """Normalizes each feature (the last axis) over the batch and every other axis, then scales and shifts.

    Training: ``y = gamma (x - mu) / sqrt(var + epsilon) + beta`` with the batch's mean ``mu`` and
    (biased) variance ``var``, and ``moving = momentum moving + (1 - momentum) batch`` for both
    statistics. Inference (and training of a layer with ``trainable=False``, as in Keras): the same
    with the moving statistics. ``gamma`` and ``beta`` are parameters; ``moving_mean`` and
    ``moving_variance`` are non-trainable state (saved, never stepped by the optimizer). The backward
    pass is in ``fastdnn.kernels.cpu.normalization``.

    Under `fastdnn.distributed.data_parallel` each process holds a shard of the batch. With
    ``synchronized`` None (the default) or True the statistics are those of the GLOBAL batch: the
    processes add their per-feature sums and sums of squares (one allreduce in the forward pass) and
    the two per-feature sums of the backward pass (one more), so N processes train exactly as one
    process on the same global batch. ``synchronized=False`` (Keras's default, where it means "per
    replica") normalizes each shard with its own statistics; the moving statistics are then averaged
    over the processes after every step (weighted by shard size), so every replica holds the same
    ones. In one process the setting changes nothing.

    Parameters
    ----------
    axis : int
        The feature axis; only -1 (channels last) is supported.
    momentum : float in [0, 1]
    epsilon : float > 0
    center, scale : bool
        Whether to learn ``beta`` and ``gamma`` (otherwise 0 and 1).
    beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer : str or Initializer
    synchronized : bool or None
        Data parallel: statistics over the global batch (None, True) or over each process's shard (False).
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        synchronized=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if axis != -1 or isinstance(axis, bool):
            raise ValueError(f"axis: only -1 (the last axis, channels last) is supported, received {axis!r}")
        self.axis = -1
        self.momentum = validation.real_number(momentum, "momentum", low=0.0, high=1.0)
        self.epsilon = validation.real_number(epsilon, "epsilon", low=0.0, low_inclusive=False)
        self.center = validation.boolean(center, "center")
        self.scale = validation.boolean(scale, "scale")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        if synchronized is not None and not isinstance(synchronized, bool):
            raise TypeError(f"synchronized: expected None, True or False, received {validation.describe(synchronized)}")
        self.synchronized = synchronized
        #: The data-parallel step as this layer sees it (set by ``fit``; one process otherwise).
        self.shard = distributed.Shard()

    @property
    def synchronizes(self):
        """Whether training statistics are summed over data-parallel processes now (see ``synchronized``)."""
        return self.shard.parallel.size > 1 and self.synchronized is not False

    @property
    def replicated_state(self):
        """The moving statistics when each process normalizes its own shard (``synchronized=False``,
        several processes): the arrays ``fit`` averages over processes after every step; else ()."""
        if self.shard.parallel.size > 1 and self.synchronized is False and self.trainable:
            return (self.state["moving_mean"], self.state["moving_variance"])
        return ()

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        C = self.input_shape[-1]
        if self.scale:
            self.add_weight("gamma", (C,), self.gamma_initializer)
        if self.center:
            self.add_weight("beta", (C,), self.beta_initializer)
        self.add_weight("moving_mean", (C,), self.moving_mean_initializer, trainable=False)
        self.add_weight("moving_variance", (C,), self.moving_variance_initializer, trainable=False)
        self._features = C
        self._empty = np.empty(0, dtype=self.dtype)
        self._epsilon = self.dtype.type(self.epsilon)
        self._momentum = self.dtype.type(self.momentum)

    def _affine(self, store):
        return (store["gamma"] if self.scale else self._empty), (store["beta"] if self.center else self._empty)

    def forward(self, x, training=False):
        C = self._features
        x2 = x.reshape(-1, C)
        m = x2.shape[0]
        y = self.buffer("y", x2.shape)
        gamma, beta = self._affine(self.params)
        moving_mean, moving_var = self.state["moving_mean"], self.state["moving_variance"]
        if not training:
            scale, shift = self.buffer("scale", (C,)), self.buffer("shift", (C,))
            norm_kernels.batch_norm_inference_forward(x2, gamma, beta, self._epsilon, moving_mean, moving_var, scale, shift, y)
            return y.reshape(x.shape)
        mean, inv_std, x_hat = self.buffer("mean", (C,)), self.buffer("inv_std", (C,)), self.buffer("x_hat", x2.shape)
        batch_statistics = self.trainable
        rows = m  # the rows the statistics are over: the global batch's when synchronized
        if batch_statistics and self.synchronizes:
            sums = self.buffer("sums", (2 * C + 1,), np.float64)
            norm_kernels.batch_norm_shifted_sums(x2, moving_mean, sums)
            self.shard.parallel.allreduce_sum(sums)
            rows = int(sums[2 * C])
            norm_kernels.batch_norm_global_forward(
                x2, sums, gamma, beta, self._epsilon, self._momentum, moving_mean, moving_var, mean, inv_std, x_hat, y
            )
        elif batch_statistics and m:
            norm_kernels.batch_norm_train_forward(
                x2, gamma, beta, self.dtype.type(1.0 / m), self._epsilon, self._momentum,
                moving_mean, moving_var, mean, inv_std, x_hat, y,
            )
        elif not batch_statistics:
            norm_kernels.batch_norm_frozen_forward(x2, gamma, beta, self._epsilon, moving_mean, moving_var, mean, inv_std, x_hat, y)
        # (an empty shard of a process with its own statistics has nothing to normalize or average)
        self._cache = (x_hat, inv_std, batch_statistics, x.shape, rows)
        return y.reshape(x.shape)

    def backward(self, dLdY):
        x_hat, inv_std, batch_statistics, x_shape, rows = self._cache
        C = self._features
        m = x_hat.shape[0]
        g2 = dLdY.reshape(m, C)
        dgamma, dbeta = self._affine(self.grads)
        dX = self.buffer("dx", x_hat.shape) if self.compute_input_grad else x_hat[:0]
        if batch_statistics and self.synchronizes:
            return self._synchronized_backward(x_hat, inv_std, g2, rows, dgamma, dbeta, dX, x_shape)
        if batch_statistics and not m:
            dgamma[:] = 0
            dbeta[:] = 0
            return dX.reshape(x_shape) if self.compute_input_grad else None
        norm_kernels.batch_norm_backward(
            x_hat, inv_std, self._affine(self.params)[0], g2, self.dtype.type(1.0 / m), batch_statistics,
            self.buffer("sum_g", (C,)), self.buffer("sum_gx", (C,)), self.buffer("factor", (C,)),
            dgamma, dbeta, dX, self.compute_input_grad,
        )
        return dX.reshape(x_shape) if self.compute_input_grad else None

    def _synchronized_backward(self, x_hat, inv_std, g2, rows, dgamma, dbeta, dX, x_shape):
        """This shard's parameter gradients (the step's allreduce adds the shards'), and ``dX`` from the
        per-feature sums over every process (one allreduce; none when no process needs ``dX``)."""
        C = self._features
        sums = self.buffer("gradient_sums", (2 * C,), np.float64)
        norm_kernels.batch_norm_gradient_sums(x_hat, g2, sums)
        dbeta[:] = sums[:C]
        dgamma[:] = sums[C:]
        if not self.compute_input_grad:
            return None
        self.shard.parallel.allreduce_sum(sums)
        norm_kernels.batch_norm_global_backward(
            x_hat, inv_std, self._affine(self.params)[0], g2, sums, 1.0 / rows, self.buffer("factor", (C,)), dX
        )
        return dX.reshape(x_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "synchronized": self.synchronized,
        }
