"""Embedding: integer indices to rows of a trainable table."""

import numpy as np

from fastdnn import initializers, validation
from fastdnn.kernels.cpu import embedding as embedding_kernels
from fastdnn.layers.base import Layer, registry


@registry.register("embedding")
class Embedding(Layer):
    """Maps each integer index ``i`` in ``[0, input_dim)`` to the row ``E[i]`` of a ``(input_dim, output_dim)`` table.

    Input ``(batch, ...)`` of indices, output ``(batch, ..., output_dim)``. The gradient is a
    scatter-add, ``dL/dE[i] = sum of dL/dy over the positions holding i``; there is none with respect
    to the (integer) input, so an Embedding is the first layer of a model.

    Indices are checked before any kernel runs: a model's ``fit``/``predict``/``evaluate`` and
    ``layer(x)`` refuse an index outside ``[0, input_dim)`` with an error naming it and its position.

    Parameters
    ----------
    input_dim : int
        Vocabulary size.
    output_dim : int
        Size of each embedding vector.
    embeddings_initializer : str or Initializer
        Keras's default ``"uniform"``: uniform in [-0.05, 0.05].
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.input_dim = validation.positive_int(input_dim, "input_dim")
        self.output_dim = validation.positive_int(output_dim, "output_dim")
        self.embeddings_initializer = initializers.get(embeddings_initializer)

    def validate_input(self, x, name, dtype):
        """Integer indices (or whole-number floats) in ``[0, input_dim)``, as int64, with a batch axis."""
        return validation.index_array(
            x, name, self.input_dim, min_ndim=2, what=f"indices for Embedding {self.name!r} (input_dim={self.input_dim})"
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer)

    def forward(self, x, training=False):
        if x.dtype.kind == "f":
            raise TypeError(
                f"x: Embedding {self.name!r} takes integer indices (it has to be the first layer of a model), "
                f"received an array of dtype {x.dtype}"
            )
        index = x.reshape(-1) if x.dtype == np.int64 else x.reshape(-1).astype(np.int64)
        y = self.buffer("y", (index.shape[0], self.output_dim))
        embedding_kernels.embedding_forward(index, self.params["embeddings"], y)
        if training:
            self._cache = index
        return y.reshape(*x.shape, self.output_dim)

    def backward(self, dLdY):
        """Fills ``grads["embeddings"]`` by a scatter-add; returns None (no gradient for indices)."""
        index = self._cache
        embedding_kernels.embedding_backward(index, dLdY.reshape(index.shape[0], self.output_dim), self.grads["embeddings"])
        return None

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
        }
