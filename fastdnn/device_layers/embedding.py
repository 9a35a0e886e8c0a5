"""Embedding on the device: integer indices in, gathered rows out, a scatter-add gradient."""

import numpy as np

from fastdnn.device_layers import DeviceLayer, register


@register("Embedding")
class EmbeddingOnDevice(DeviceLayer):
    """``y[k] = E[index[k]]``; ``dL/dE`` by the atomic scatter-add of ``kernels.cuda.embedding``.

    The input is a device array of int64 indices, already validated on the host (the model's
    ``fit``/``predict``/``evaluate`` run ``Embedding.validate_input``, and the engine keeps the dtype
    when it copies and gathers batches). An Embedding has no input gradient.
    """

    def forward(self, x, params, training):
        layer = self.layer
        shape = tuple(x.shape)
        if np.dtype(x.dtype).kind == "f":
            raise TypeError(
                f"x: Embedding {layer.name!r} takes integer indices (it has to be the first layer of a model), "
                f"received a device array of dtype {x.dtype}"
            )
        index = x.reshape(-1)
        if np.dtype(x.dtype) != np.int64:  # not through a model (which validates to int64): convert as the CPU does
            index = self.engine._cuda.to_device(np.ascontiguousarray(index.copy_to_host(), dtype=np.int64))
        y = self.buffer("y", (index.shape[0], layer.output_dim))
        self.k.embedding.embedding_forward(index, params["embeddings"], y)
        self._index = index
        return y.reshape(*shape, layer.output_dim)

    def backward(self, dLdY, params, grads, from_logits):
        index = self._index
        self.k.embedding.embedding_backward(index, dLdY.reshape(index.shape[0], self.layer.output_dim), grads["embeddings"])
        return None
