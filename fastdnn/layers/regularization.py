"""Dropout: inverted dropout in training, the identity in inference."""

import numbers

import numpy as np

from fastdnn import random, validation
from fastdnn.kernels.cpu import dropout as dropout_kernels
from fastdnn.layers.base import Layer, registry


@registry.register("dropout")
class Dropout(Layer):
    """Sets each input to 0 with probability ``rate`` in training, and scales the others by ``1 / (1 - rate)``.

    ``y = x * mask`` with ``mask = [u >= rate] / (1 - rate)``, ``u`` uniform in [0, 1) per element and
    per batch; ``dL/dx = dL/dy * mask`` with the same mask. In inference (``training=False``: predict,
    evaluate) the layer passes its input through, so the expected activations agree.

    Parameters
    ----------
    rate : float in [0, 1)
        Probability of dropping an input.
    seed : int, optional
        Gives the layer its own random stream; without it the masks come from the library's generator,
        which ``fd.set_seed`` seeds (seeded runs are reproducible either way).
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = validation.real_number(rate, "rate", low=0.0, high=1.0, high_inclusive=False)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"seed: expected None or a non-negative integer, received {validation.describe(seed)}")
        self.seed = None if seed is None else int(seed)
        #: The layer's own ``numpy.random.Generator`` (from ``seed``), or None for the library's.
        self.generator = None if seed is None else np.random.default_rng(self.seed)

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        self._rate = self.dtype.type(self.rate)
        self._scale = self.dtype.type(1.0 / (1.0 - self.rate))

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._cache = None
            return x
        flat = x.reshape(-1)
        mask = self.buffer("mask", flat.shape)
        generator = self.generator if self.generator is not None else random.generator()
        generator.random(out=mask, dtype=self.dtype)
        y = self.buffer("y", flat.shape)
        dropout_kernels.dropout_forward(flat, mask, self._rate, self._scale, y)
        self._cache = mask
        return y.reshape(x.shape)

    def backward(self, dLdY):
        if not self.compute_input_grad:
            return None
        mask = self._cache
        if mask is None:
            return dLdY
        dX = self.buffer("dx", mask.shape)
        dropout_kernels.dropout_backward(dLdY.reshape(-1), mask, dX)
        return dX.reshape(dLdY.shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
