"""Dropout on the device: inverted dropout with the CPU's counter-based masks, the identity in inference."""

from fastdnn.device_layers import DeviceLayer, register


@register("Dropout")
class DropoutOnDevice(DeviceLayer):
    """``y = x * mask``, ``mask = [u >= rate] / (1 - rate)``, ``dL/dx = dL/dy * mask`` in training.

    ``u`` is hashed on the device (``kernels.cuda.dropout``) from the layer's own counter-based stream
    (``layer.random_stream``, shared with the CPU layer) and each element's position in the global
    batch (``layer.shard.first_row``): the masks are the CPU's, bit for bit, and a data-parallel
    process draws those one process draws for its rows.
    """

    def __init__(self, engine, index, layer):
        super().__init__(engine, index, layer)
        self._mask = None

    def forward(self, x, params, training):
        layer = self.layer
        if not training or layer.rate == 0.0:
            self._mask = None
            return x
        shape = tuple(x.shape)
        flat = x.reshape(-1)
        n = flat.shape[0]
        per_row = n // shape[0] if shape[0] else 0
        mask = self.buffer("mask", (n,))
        y = self.buffer("y", (n,))
        word = layer.random_stream.next_word()
        self.k.dropout.dropout_forward(flat, word, layer.shard.first_row * per_row, layer._rate, layer._scale, mask, y)
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
