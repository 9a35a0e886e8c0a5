"""Dropout on the device: inverted dropout with masks drawn on the GPU, the identity in inference."""

from fastdnn import random
from fastdnn.device_layers import DeviceLayer, register


@register("Dropout")
class DropoutOnDevice(DeviceLayer):
    """``y = x * mask``, ``mask = [u >= rate] / (1 - rate)``, ``dL/dx = dL/dy * mask`` in training.

    The uniform draws ``u`` are made on the device (``kernels.cuda.dropout.fill_uniform``) from
    xoroshiro128p states created at the first training batch of this handler, seeded with one number
    drawn from the layer's own generator (``Dropout(seed=...)``) or else the library's (``fd.set_seed``):
    seeded device runs are reproducible, but their masks are not the CPU's (the same distribution;
    the CPU draws a host array per batch, the device one seed per handler).
    """

    def __init__(self, engine, index, layer):
        super().__init__(engine, index, layer)
        self._states = None
        self._mask = None

    def _random_states(self, size):
        if self._states is None:
            generator = self.layer.generator if self.layer.generator is not None else random.generator()
            seed = int(generator.integers(0, 2**63))
            self._states = self.k.dropout.random_states(size, seed)
        return self._states

    def forward(self, x, params, training):
        layer = self.layer
        if not training or layer.rate == 0.0:
            self._mask = None
            return x
        shape = tuple(x.shape)
        flat = x.reshape(-1)
        n = flat.shape[0]
        mask = self.buffer("mask", (n,))
        self.k.dropout.fill_uniform(self._random_states(n), mask)
        y = self.buffer("y", (n,))
        self.k.dropout.dropout_forward(flat, mask, layer._rate, layer._scale, y)
        self._mask = mask
        return y.reshape(shape)

    def backward(self, dLdY, params, grads, from_logits):
        if not self.layer.compute_input_grad:
            return None
        mask = self._mask
        if mask is None:
            return dLdY
        dX = self.buffer("dx", mask.shape)
        self.k.dropout.dropout_backward(dLdY.reshape(-1), mask, dX)
        return dX.reshape(tuple(dLdY.shape))
