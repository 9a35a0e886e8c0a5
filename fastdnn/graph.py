"""The computational graph: symbolic tensors, the nodes (layer calls) that make them, and their order.

As in Keras 3 (``ops/node.py``, ``models/functional.py``): ``fd.Input(shape)`` is a `SymbolicTensor`;
calling a layer on symbolic tensors builds the layer for their shapes and records a `Node`, whose
output is a new symbolic tensor that remembers it. A model walks back from its outputs to its inputs
and keeps the nodes in topological order (`trace`), computed once when it is built.
"""

import numpy as np

from fastdnn import config, validation


class SymbolicTensor:
    """A placeholder for a batch of arrays (Keras's ``KerasTensor``): no values, only a shape.

    Attributes
    ----------
    shape : tuple
        ``(None, *sample_shape)``: the batch axis is unknown.
    dtype : numpy dtype
    node : Node
        The layer call that produces it (for an input, the call of its `InputLayer`).
    name : str
        The name of the layer that produced it.
    """

    def __init__(self, sample_shape, dtype, node, name):
        self.sample_shape = tuple(sample_shape)
        self.dtype = np.dtype(dtype)
        self.node = node
        self.name = name

    @property
    def shape(self):
        return (None, *self.sample_shape)

    @property
    def is_input(self):
        return not self.node.inputs

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"symbolic tensor {self.name!r} of shape {self.shape} has no values: it describes a model's graph; "
            f"pass NumPy arrays to fit/evaluate/predict"
        )

    def __repr__(self):
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype.name} name={self.name!r}>"


class Node:
    """One call of ``layer`` on the symbolic tensors ``inputs``; ``output`` is what it produced."""

    def __init__(self, layer, inputs, output_shape, dtype):
        self.layer = layer
        self.inputs = tuple(inputs)
        self.output = SymbolicTensor(output_shape, dtype, self, layer.name)

    def __repr__(self):
        return f"<Node {self.layer.name!r} of {[t.name for t in self.inputs]}>"


def Input(shape, name=None, dtype=None):
    """A model input: a `SymbolicTensor` of sample shape ``shape`` (Keras's ``keras.Input``).

    ``fd.Model(inputs, outputs)`` takes it as an input; ``fd.Sequential([fd.Input(shape), ...])``
    takes it as the declaration of the input shape.
    """
    from fastdnn.layers.core import InputLayer

    layer = InputLayer(shape=shape, name=name)
    dtype = np.dtype(dtype or config.floatx())
    layer.build(layer.input_shape, dtype)
    return Node(layer, (), layer.input_shape, dtype).output


def is_symbolic(value):
    """Whether ``value`` is a symbolic tensor, or a non-empty list/tuple/dict of them."""
    if isinstance(value, SymbolicTensor):
        return True
    if isinstance(value, dict):
        value = list(value.values())
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, SymbolicTensor) for v in value)


def contains_symbolic(value):
    """Whether ``value`` (an argument of fit/evaluate/predict) holds a symbolic tensor anywhere."""
    if isinstance(value, SymbolicTensor):
        return True
    if isinstance(value, dict):
        return any(contains_symbolic(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_symbolic(v) for v in value)
    return False


def structure(tensors, argument):
    """``(names, tensors)`` of a model's ``inputs`` or ``outputs``: one tensor, a list, or a dict by name.

    ``names`` is None unless a dict was given (then the dict's keys, in order).
    """
    if isinstance(tensors, SymbolicTensor):
        return None, [tensors]
    if isinstance(tensors, dict) and tensors:
        for key, value in tensors.items():
            if not isinstance(key, str) or not isinstance(value, SymbolicTensor):
                raise TypeError(f"{argument}: expected a dict of names to symbolic tensors (fd.Input, layer outputs), received {key!r}: {validation.describe(value)}")
        return list(tensors), list(tensors.values())
    if isinstance(tensors, (list, tuple)) and tensors:
        for i, value in enumerate(tensors):
            if not isinstance(value, SymbolicTensor):
                raise TypeError(f"{argument}[{i}]: expected a symbolic tensor (fd.Input, or a layer called on one), received {validation.describe(value)}")
        return None, list(tensors)
    raise TypeError(f"{argument}: expected a symbolic tensor, a non-empty list or a dict of them, received {validation.describe(tensors)}")


def trace(inputs, outputs):
    """The nodes between ``inputs`` and ``outputs`` in topological order (inputs' nodes excluded).

    Raises a ValueError naming the tensors when an output depends on a tensor that is not among the
    inputs, or when an input is not used by any output.
    """
    for i, tensor in enumerate(inputs):
        if not tensor.is_input:
            raise ValueError(
                f"inputs[{i}]: expected a tensor made by fd.Input, received {tensor.name!r} (the output of layer "
                f"{tensor.node.layer.name!r}); give the model the fd.Input it was computed from"
            )
    if len({id(t) for t in inputs}) != len(inputs):
        raise ValueError(f"inputs: the same tensor appears twice in {[t.name for t in inputs]}")
    given = {id(t) for t in inputs}
    order, done, reached = [], set(), set()
    for j, output in enumerate(outputs):
        # Iterative depth-first post-order: deep graphs (hundreds of layers) must not hit Python's recursion limit.
        stack = [(output, False)]
        while stack:
            tensor, expanded = stack.pop()
            if id(tensor) in given:
                reached.add(id(tensor))
                continue
            if tensor.is_input:
                raise ValueError(
                    f"outputs: output {j} ({output.name!r}, shape {output.shape}) is not reachable from the inputs: "
                    f"it depends on input {tensor.name!r} of shape {tensor.shape}, which is not among the model's inputs "
                    f"{[t.name for t in inputs]}"
                )
            node = tensor.node
            if id(node) in done:
                continue
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((tensor, True))
            for source in reversed(node.inputs):
                if id(source) not in given and id(source.node) in done:
                    continue
                stack.append((source, False))
    unused = [f"{t.name!r} (shape {t.shape})" for t in inputs if id(t) not in reached]
    if unused:
        raise ValueError(f"inputs: {', '.join(unused)} not used by any output of the model; remove it or connect it")
    return order


def deliver(step, result, n_inputs, gradients, add):
    """Hand a node's input gradients (``result``: one, or a list for a multi-input layer) to the
    tensors it read, through ``add(gradients, slot, gradient)``; the model's inputs need none."""
    if step.layer.multiple_inputs:
        for source, part in zip(step.sources, result):
            if source >= n_inputs:
                add(gradients, source, part)
    else:
        add(gradients, step.sources[0], result)
