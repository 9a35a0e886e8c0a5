"""The flat parameter store: all trainable parameters of a model in ONE buffer, gradients in another.

Layers keep using ``layer.params["W"]`` and ``layer.grads["W"]``; after packing these are views into
the flat buffers, so backward passes write gradients where the optimizer reads them and one kernel
call updates every parameter.
"""

import numpy as np


class ParameterStore:
    """Pack the parameters of built ``layers`` into flat buffers of ``dtype``.

    Attributes
    ----------
    params, grads : 1-D arrays
        The flat buffers.
    reduction : 1-D array
        ``grads`` followed by one spare slot: what a data-parallel step reduces in a single message
        (the slot carries the loss).
    offsets : int64 array
        ``offsets[k]:offsets[k+1]`` is the slice of the k-th variable.
    variables : list of (layer, name)
        The variables in buffer order.
    """

    def __init__(self, layers, dtype):
        self.variables = [(layer, name) for layer in layers for name in layer.params]
        sizes = [layer.params[name].size for layer, name in self.variables]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self.params = np.empty(int(self.offsets[-1]), dtype=dtype)
        self.reduction = np.zeros(self.params.shape[0] + 1, dtype=dtype)
        self.grads = self.reduction[:-1]
        for (layer, name), start, stop in zip(self.variables, self.offsets[:-1], self.offsets[1:]):
            shape = layer.params[name].shape
            self.params[start:stop] = layer.params[name].reshape(-1)
            layer.params[name] = self.params[start:stop].reshape(shape)
            layer.grads[name] = self.grads[start:stop].reshape(shape)

    @property
    def size(self):
        return self.params.shape[0]
