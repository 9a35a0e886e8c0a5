"""Reshaping layers: Flatten and Reshape. No arithmetic: views of the input and of the gradient."""

import math

from fastdnn import validation
from fastdnn.layers.base import Layer, registry
from fastdnn.layers.conv import channels_last


@registry.register("flatten")
class Flatten(Layer):
    """Flattens each sample into a vector: ``(batch, d1, d2, ...)`` -> ``(batch, d1 d2 ...)``.

    Parameters
    ----------
    data_format : None or "channels_last"
        Channels-last inputs flatten in row-major order, as Keras's do.
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = channels_last(data_format)

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], *self.output_shape)

    def backward(self, dLdY):
        return dLdY.reshape(dLdY.shape[0], *self.input_shape) if self.compute_input_grad else None

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


@registry.register("reshape")
class Reshape(Layer):
    """Gives each sample the shape ``target_shape`` (row-major order, the batch axis untouched).

    Parameters
    ----------
    target_shape : tuple of int
        The sample shape of the output; one entry may be -1, inferred from the input size.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if isinstance(target_shape, int) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (tuple, list)) or not target_shape:
            raise TypeError(f"target_shape: expected a non-empty tuple of positive integers (one may be -1), received {validation.describe(target_shape)}")
        dims = []
        for i, dim in enumerate(target_shape):
            if dim == -1 and not isinstance(dim, bool):
                dims.append(-1)
            else:
                dims.append(validation.positive_int(dim, f"target_shape[{i}]"))
        if dims.count(-1) > 1:
            raise ValueError(f"target_shape: at most one entry may be -1, received {tuple(target_shape)}")
        self.target_shape = tuple(dims)

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"target_shape: {self.target_shape} cannot hold samples of shape {tuple(input_shape)} ({size} values)")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(
                f"target_shape: {self.target_shape} holds {known} values, but samples of shape {tuple(input_shape)} have {size}"
            )
        return self.target_shape

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], *self.output_shape)

    def backward(self, dLdY):
        return dLdY.reshape(dLdY.shape[0], *self.input_shape) if self.compute_input_grad else None

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}
