"""A user-written layer with its own @njit kernel: ``y = a * tanh(x)``, ``a`` a trainable vector.

The Layer protocol: ``build`` creates weights with ``add_weight``; ``forward`` writes into buffers
from ``self.buffer`` and keeps what backward needs; ``backward`` OVERWRITES ``self.grads`` (the
engine adds the calls of a shared layer) and returns ``dL/dx`` (None when ``compute_input_grad`` is
off); ``get_config`` returns the constructor's arguments. ``fastdnn.verify.check_layer`` checks it.

    python examples/custom_layer.py
"""

import numba
import numpy as np

import fastdnn as fd


@numba.njit
def scaled_tanh_forward(x, a, y):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            y[i, j] = a[j] * np.tanh(x[i, j])


@numba.njit
def scaled_tanh_backward(x, a, g, dx, da):
    """``dL/dx = g a (1 - tanh^2 x)``, ``dL/da = sum over rows of g tanh x`` (written, not added)."""
    da[:] = 0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            t = np.tanh(x[i, j])
            da[j] += g[i, j] * t
            dx[i, j] = g[i, j] * a[j] * (1.0 - t * t)


class ScaledTanh(fd.layers.Layer):
    """``y = a * tanh(x)`` over the last axis, ``a`` starting at 1."""

    def build(self, input_shape, dtype=None):
        super().build(input_shape, dtype)
        self.add_weight("a", (self.input_shape[-1],), "ones")

    def forward(self, x, training=False):
        x2 = x.reshape(-1, self.input_shape[-1])
        y = self.buffer("y", x2.shape)
        scaled_tanh_forward(x2, self.params["a"], y)
        if training:
            self._cache = x2
        return y.reshape(x.shape)

    def backward(self, dLdY):
        x2 = self._cache
        dx = self.buffer("dx", x2.shape)
        scaled_tanh_backward(x2, self.params["a"], dLdY.reshape(x2.shape), dx, self.grads["a"])
        return dx.reshape(dLdY.shape) if self.compute_input_grad else None


if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout's verify/
    from fastdnn.verify import check_layer

    print(check_layer(ScaledTanh(), (5,)))
    inputs = fd.Input((8,))
    shared = ScaledTanh(name="scaled")
    hidden = fd.layers.Dense(8)(inputs)
    outputs = fd.layers.Dense(3, activation="softmax")(fd.layers.Add()([shared(hidden), shared(inputs)]))
    model = fd.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(256, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    print(model.fit(x, y, epochs=20, verbose=0).history["accuracy"][-1])
