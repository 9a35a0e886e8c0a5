"""Dropout: inverted dropout in training, the identity in inference."""

import numbers

from fastdnn import distributed, random, validation
from fastdnn.kernels.cpu import dropout as dropout_kernels
from fastdnn.layers.base import Layer, registry


@registry.register("dropout")
class Dropout(Layer):
    """Sets each input to 0 with probability ``rate`` in training, and scales the others by ``1 / (1 - rate)``.

    ``y = x * mask`` with ``mask = [u >= rate] / (1 - rate)``, ``u`` uniform in [0, 1) per element and
    per batch; ``dL/dx = dL/dy * mask`` with the same mask. In inference (``training=False``: predict,
    evaluate) the layer passes its input through, so the expected activations agree.

    The numbers are counter-based (`fastdnn.random.CounterStream`): ``u`` of an element is a hash of
    the layer's key, the step count and the element's position in the GLOBAL batch. A data-parallel
    process (`fastdnn.distributed`) therefore draws for its rows the mask one process draws for them,
    and ``device="cuda"`` draws the CPU's masks.

    Parameters
    ----------
    rate : float in [0, 1)
        Probability of dropping an input.
    seed : int, optional
        The layer's key (below 2^64); without it the key is drawn from the library's generator, which
        ``fd.set_seed`` seeds, when the layer first trains (seeded runs are reproducible either way).
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = validation.real_number(rate, "rate", low=0.0, high=1.0, high_inclusive=False)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64):
            raise ValueError(f"seed: expected None or a non-negative integer below 2^64, received {validation.describe(seed)}")
        self.seed = None if seed is None else int(seed)
        #: The masks' counter-based stream (key and step count); reset it to replay masks.
        self.random_stream = random.CounterStream(self.seed)
        #: The data-parallel step as this layer sees it: where its rows begin in the global batch.
        self.shard = distributed.Shard()

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        self._rate = self.dtype.type(self.rate)
        self._scale = self.dtype.type(1.0 / (1.0 - self.rate))

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self._cache = None
            return x
        flat = x.reshape(-1)
        rows = x.shape[0]
        per_row = flat.shape[0] // rows if rows else 0
        mask = self.buffer("mask", flat.shape)
        y = self.buffer("y", flat.shape)
        word = self.random_stream.next_word()  # every process advances, an empty shard too
        dropout_kernels.dropout_forward(flat, word, self.shard.first_row * per_row, self._rate, self._scale, mask, y)
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
