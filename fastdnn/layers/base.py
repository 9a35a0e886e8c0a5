"""The Layer protocol: ``build(input_shape)``, ``forward(x, training)``, ``backward(dLdY)``, ``get_config()``.

Shapes exclude the batch axis. ``forward`` and ``backward`` return views of buffers the layer reuses
on its next call (no allocation per batch); ``layer(x)`` is the convenient form that builds on
first use and returns a fresh array.
"""

import itertools
import re
import threading

import numpy as np

from fastdnn import config, initializers, validation
from fastdnn.buffers import BufferPool
from fastdnn.registry import Registry

registry = Registry("layer")

_name_counters = {}


def _unique_name(base):
    counter = _name_counters.setdefault(base, itertools.count())
    index = next(counter)
    return base if index == 0 else f"{base}_{index}"


def _snake_case(name):
    """Keras's default layer names: ``Dense`` -> ``dense``, ``Conv2D`` -> ``conv2d``,
    ``SimpleRNN`` -> ``simple_rnn``, ``GlobalAveragePooling2D`` -> ``global_average_pooling2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Layer:
    """Base class of all layers.

    Parameters
    ----------
    name : str, optional
        Unique name; defaults to the snake-case class name with a counter (``dense_2``).
    input_shape : tuple of int, optional
        Sample shape of the input (without batch axis), for the first layer of a model.
    trainable : bool
        Whether the optimizer updates this layer's parameters.
    """

    def __init__(self, name=None, input_shape=None, trainable=True):
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name: expected a non-empty string, received {validation.describe(name)}")
        self.name = name or _unique_name(_snake_case(type(self).__name__))
        self.input_shape = None if input_shape is None else validation.shape_tuple(input_shape, "input_shape")
        self.trainable = validation.boolean(trainable, "trainable")
        self.output_shape = None
        self.built = False
        self.dtype = None
        self.params = {}
        self.grads = {}
        #: Non-trainable variables (moving statistics): saved and restored, never stepped.
        self.state = {}
        self.compute_input_grad = True
        self._local = threading.local()

    # -- building --------------------------------------------------------------------------------

    def build(self, input_shape, dtype=None):
        """Create parameters for inputs of sample shape ``input_shape``."""
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype or config.floatx())
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def add_weight(self, name, shape, initializer, trainable=True):
        """Create and initialize a variable: a parameter with a zero gradient, or (``trainable=False``)
        an entry of ``state`` that the optimizer never touches.
        """
        values = np.ascontiguousarray(initializers.get(initializer)(shape, dtype=self.dtype), dtype=self.dtype)
        if not trainable:
            self.state[name] = values
            return values
        self.params[name] = values
        self.grads[name] = np.zeros_like(values)
        return values

    @property
    def variables(self):
        """Every variable by name: the parameters, then the state (the order of `get_weights`)."""
        return {**self.params, **self.state}

    def count_params(self):
        return int(sum(v.size for v in self.variables.values()))

    def count_trainable_params(self):
        return int(sum(p.size for p in self.params.values())) if self.trainable else 0

    def get_weights(self):
        """Copies of every variable, parameters first, in creation order."""
        return [v.copy() for v in self.variables.values()]

    def set_weights(self, weights):
        """Copy ``weights`` (a list like `get_weights` returns) into the variables, in place.

        Everything is validated before anything is written.
        """
        variables = self.variables
        if not isinstance(weights, (list, tuple)) or len(weights) != len(variables):
            count = len(weights) if isinstance(weights, (list, tuple)) else validation.describe(weights)
            raise ValueError(f"weights: expected a list of {len(variables)} arrays for layer {self.name!r}, received {count}")
        checked = [
            checked_weight(value, current, f"weights for {self.name}.{key}")
            for (key, current), value in zip(variables.items(), weights)
        ]
        for current, array in zip(variables.values(), checked):
            current[...] = array

    def validate_input(self, x, name, dtype):
        """The public-entry check of a model input when this layer comes first: a float array of
        ``dtype`` with a batch axis. Layers taking other inputs (integer indices) override it.
        """
        return validation.float_array(x, name, dtype, min_ndim=2)

    # -- running ---------------------------------------------------------------------------------

    def forward(self, x, training=False):
        """Output for a batch ``x`` (a view of a reused buffer). ``training`` keeps what backward needs."""
        raise NotImplementedError

    def backward(self, dLdY):
        """``dL/dx`` from ``dL/dy`` of the last training forward; fills ``self.grads``.

        Returns ``None`` when ``compute_input_grad`` is off (the first layer of a model).
        """
        raise NotImplementedError

    #: True for layers that take a list of tensors (the merge layers): ``build`` gets a list of
    #: shapes, ``forward`` a list of arrays, and ``backward`` returns a list of gradients.
    multiple_inputs = False

    def __call__(self, x):
        """On symbolic tensors (``fd.Input``, other layers' outputs): record a graph node and return its
        symbolic output. On arrays: build on first use, run an inference forward pass, return a fresh array.
        """
        from fastdnn import graph

        if graph.is_symbolic(x):
            return self._call_symbolic(x)
        dtype = self.dtype or config.floatx()
        x = self.validate_input(x, "x", dtype)
        if not self.built:
            self.build(x.shape[1:], dtype)
        self.check_input(x)
        return np.array(self.forward(x, training=False), copy=True)

    def _call_symbolic(self, inputs):
        """Build for the inputs' shapes (or check them against the built ones) and record a `graph.Node`."""
        from fastdnn import graph

        if isinstance(inputs, dict):
            raise TypeError(f"layer {self.name!r}: expected a symbolic tensor or a list of them, received a dict")
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if self.multiple_inputs != isinstance(inputs, (list, tuple)):
            expected = "a list of symbolic tensors" if self.multiple_inputs else "one symbolic tensor"
            raise TypeError(f"layer {self.name!r} ({type(self).__name__}): expected {expected}, received {validation.describe(inputs)}")
        shapes = [t.sample_shape for t in tensors]
        shape = shapes if self.multiple_inputs else shapes[0]
        dtype = tensors[0].dtype if tensors[0].dtype.kind == "f" else np.dtype(config.floatx())
        if not self.built:
            self.build(shape, dtype)
        else:
            built = list(self.input_shape) if self.multiple_inputs else self.input_shape
            if [tuple(s) for s in built] != [tuple(s) for s in shape] if self.multiple_inputs else tuple(built) != tuple(shape):
                raise ValueError(
                    f"layer {self.name!r} was built for inputs of shape {_batch_shapes(built, self.multiple_inputs)}, "
                    f"but is called on {_batch_shapes(shape, self.multiple_inputs)}"
                )
        return graph.Node(self, tensors, self.output_shape, self.dtype).output

    def _select_call(self, call):
        """Use the buffers of call ``call`` of this layer (a layer shared by several graph nodes keeps
        one set of buffers per call, so that one call's outputs survive the next call)."""
        local = self._local
        pools = getattr(local, "pools", None)
        if pools is None:
            pools = local.pools = {}
        pool = pools.get(call)
        if pool is None:
            pool = pools[call] = BufferPool()
        local.pool = pool

    def check_input(self, x, name="x"):
        """Raise unless ``x`` is a batch of this layer's built input shape and dtype."""
        expected = (x.shape[0] if x.ndim else 0, *self.input_shape)
        if x.ndim != len(expected) or x.shape[1:] != self.input_shape:
            raise ValueError(
                f"{name}: layer {self.name!r} expects input of shape (batch, {', '.join(map(str, self.input_shape))}), "
                f"received {x.shape}"
            )
        if x.dtype.kind == "f" and x.dtype != self.dtype:
            raise TypeError(f"{name}: layer {self.name!r} expects dtype {self.dtype}, received {x.dtype}")

    def buffer(self, key, shape, dtype=None):
        """A ``shape`` view of this layer's reused buffer ``key`` (see `BufferPool`).

        Buffers are per thread, so that ``predict`` may run in several threads at once.
        """
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = BufferPool()
        return pool.get(key, shape, self.dtype if dtype is None else dtype)

    def __getstate__(self):
        # Buffers are scratch space: copies and pickles of a layer start without them.
        state = dict(self.__dict__)
        state.pop("_local", None)
        state.pop("_cache", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    # -- config ----------------------------------------------------------------------------------

    def get_config(self):
        config_ = {"name": self.name, "trainable": self.trainable}
        if self.input_shape is not None:
            config_["input_shape"] = list(self.input_shape)
        return config_

    @classmethod
    def from_config(cls, config_):
        return cls(**config_)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def _batch_shapes(shape, multiple):
    return [(None, *s) for s in shape] if multiple else (None, *shape)


def checked_weight(value, current, name):
    """``value`` validated to replace the variable ``current`` (same shape, finite, its dtype)."""
    array = validation.float_array(value, name, current.dtype, min_ndim=0)
    if array.shape != current.shape:
        raise ValueError(f"{name}: expected shape {current.shape}, received {array.shape}")
    return array


def get(identifier, custom_objects=None):
    """A layer from a config dict ``{"class_name": ..., "config": {...}}`` or a `Layer` instance.

    ``custom_objects`` maps class names to layer classes that are not registered (a user's own).
    """
    if isinstance(identifier, Layer):
        return identifier
    if isinstance(identifier, dict) and "class_name" in identifier:
        name = identifier["class_name"]
        cls = custom_objects[name] if custom_objects and name in custom_objects else registry.lookup(name)
        return cls.from_config(dict(identifier.get("config", {})))
    raise TypeError(f"layer: expected a Layer or a layer config dict, received {validation.describe(identifier)}")


def serialize(layer):
    """``{"class_name": ..., "config": ...}`` that `get` turns back into an equal, unbuilt layer."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}
