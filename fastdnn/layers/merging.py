"""Merge layers (Keras 3's names and semantics): Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate and Dot. Each takes a list of tensors: ``fd.layers.Add()([a, b])``.

``forward(inputs)`` gets a list of arrays and ``backward(dLdY)`` returns a list of ``dL/dx_i``, one
per input, each in the layer's own buffer (never the incoming gradient itself, so that the engine
may hold one input's gradient while it adds another's).
"""

import numpy as np

from fastdnn import config, validation
from fastdnn.kernels.cpu import merge as kernels
from fastdnn.layers.base import Layer, registry


class Merge(Layer):
    """Base of the merge layers: inputs of equal sample shapes, combined elementwise.

    Parameters
    ----------
    **kwargs
        ``name``, ``trainable`` (see `Layer`).
    """

    multiple_inputs = True
    #: How many inputs the layer takes: (at least, at most); None: no upper bound.
    input_count = (1, None)

    def __init__(self, **kwargs):
        kwargs.pop("input_shape", None)  # a merge layer's inputs come from the graph, not from a declaration
        super().__init__(**kwargs)

    def build(self, input_shape, dtype=None):
        shapes = self._checked_shapes(input_shape)
        self.input_shape = shapes
        self.dtype = np.dtype(dtype or config.floatx())
        self.output_shape = self.compute_output_shape(shapes)
        self.built = True

    def _checked_shapes(self, input_shape):
        """The inputs' sample shapes as a tuple of tuples, their count and agreement checked."""
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise TypeError(f"layer {self.name!r} ({type(self).__name__}): expected a list of input shapes, received {input_shape!r}")
        shapes = tuple(tuple(int(d) for d in s) for s in input_shape)
        low, high = self.input_count
        if len(shapes) < low or (high is not None and len(shapes) > high):
            expected = f"exactly {low}" if low == high else f"at least {low}"
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): expected {expected} inputs, received {len(shapes)}")
        self._check_compatible(shapes)
        return shapes

    def _check_compatible(self, shapes):
        if len(set(shapes)) > 1:
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}): inputs must have equal shapes, received "
                f"{', '.join(str((None, *s)) for s in shapes)}"
            )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def __call__(self, inputs):
        """On symbolic tensors: a graph node. On a list of arrays: an inference pass, a fresh array."""
        from fastdnn import graph

        if graph.is_symbolic(inputs):
            return self._call_symbolic(inputs)
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"inputs: layer {self.name!r} ({type(self).__name__}) expects a list of arrays, received {validation.describe(inputs)}")
        dtype = self.dtype or config.floatx()
        arrays = [validation.float_array(x, f"inputs[{i}]", dtype, min_ndim=2) for i, x in enumerate(inputs)]
        if not self.built:
            self.build([a.shape[1:] for a in arrays], dtype)
        for i, (array, shape) in enumerate(zip(arrays, self.input_shape)):
            if array.shape[1:] != shape or array.shape[0] != arrays[0].shape[0]:
                raise ValueError(f"inputs[{i}]: layer {self.name!r} expects shape (batch, {', '.join(map(str, shape))}), received {array.shape}")
        return np.array(self.forward(arrays, training=False), copy=True)

    def forward(self, inputs, training=False):
        out, cache = self._compute(kernels, self.buffer, inputs)
        if training:
            self._cache = cache
        return out

    def backward(self, dLdY):
        return self._backward_with(kernels, self.buffer, self._cache, dLdY)

    def _compute(self, k, buffer, inputs):
        """``(output, what backward needs)`` with the kernel family ``k`` and buffers from ``buffer``:
        the one body of the CPU layer and of its CUDA handler (``fastdnn.device_layers.merging``)."""
        raise NotImplementedError

    def _backward_with(self, k, buffer, cache, dLdY):
        """The list of ``dL/dx_i`` (see `_compute`)."""
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable}


class _Elementwise(Merge):
    """Inputs combined pairwise over their flattened values (one kernel call per input)."""

    def _compute(self, k, buffer, inputs):
        n = inputs[0].shape[0]
        flats = [x.reshape(-1) for x in inputs]
        out = buffer("y", flats[0].shape)
        extra = self._combine(k, buffer, flats, out)
        return out.reshape(n, *self.output_shape), (flats, n, extra)

    def _backward_with(self, k, buffer, cache, dLdY):
        flats, n, extra = cache
        g = dLdY.reshape(-1)
        grads = [buffer(f"dx{i}", g.shape) for i in range(len(flats))]
        self._gradients(k, flats, extra, g, grads)
        return [d.reshape(n, *shape) for d, shape in zip(grads, self.input_shape)]


@registry.register("add")
class Add(_Elementwise):
    """``y = x_1 + x_2 + ... + x_k``; ``dL/dx_i = dL/dy``."""

    def _combine(self, k, buffer, flats, out):
        k.copy(flats[0], out)
        for x in flats[1:]:
            k.combine(out, x, k.ADD, out)

    def _gradients(self, k, flats, extra, g, grads):
        for d in grads:
            k.copy(g, d)


@registry.register("subtract")
class Subtract(_Elementwise):
    """``y = x_1 - x_2`` (exactly two inputs); ``dL/dx_1 = dL/dy``, ``dL/dx_2 = -dL/dy``."""

    input_count = (2, 2)

    def _combine(self, k, buffer, flats, out):
        k.combine(flats[0], flats[1], k.SUBTRACT, out)

    def _gradients(self, k, flats, extra, g, grads):
        k.copy(g, grads[0])
        k.scale(g, self.dtype.type(-1.0), grads[1])


@registry.register("multiply")
class Multiply(_Elementwise):
    """``y = x_1 x_2 ... x_k`` elementwise; ``dL/dx_i = dL/dy prod_{j != i} x_j``."""

    def _combine(self, k, buffer, flats, out):
        k.copy(flats[0], out)
        for x in flats[1:]:
            k.combine(out, x, k.MULTIPLY, out)

    def _gradients(self, k, flats, extra, g, grads):
        for i, d in enumerate(grads):
            k.copy(g, d)
            for j, x in enumerate(flats):
                if j != i:
                    k.combine(d, x, k.MULTIPLY, d)


@registry.register("average")
class Average(_Elementwise):
    """``y = (x_1 + ... + x_k) / k``; ``dL/dx_i = dL/dy / k``."""

    def _combine(self, k, buffer, flats, out):
        Add._combine(self, k, buffer, flats, out)
        k.scale(out, self.dtype.type(1.0 / len(flats)), out)

    def _gradients(self, k, flats, extra, g, grads):
        for d in grads:
            k.scale(g, self.dtype.type(1.0 / len(flats)), d)


class _Extreme(_Elementwise):
    """Elementwise maximum (minimum): the gradient goes to the input holding the extreme (the first on ties)."""

    maximum = True

    def _combine(self, k, buffer, flats, out):
        winner = buffer("winner", out.shape, np.int32)
        for i, x in enumerate(flats):
            k.extreme(out, winner, x, i, self.maximum)
        return winner

    def _gradients(self, k, flats, winner, g, grads):
        for i, d in enumerate(grads):
            k.routed(g, winner, i, d)


@registry.register("maximum")
class Maximum(_Extreme):
    """``y = max(x_1, ..., x_k)`` elementwise."""

    maximum = True


@registry.register("minimum")
class Minimum(_Extreme):
    """``y = min(x_1, ..., x_k)`` elementwise."""

    maximum = False


@registry.register("concatenate")
class Concatenate(Merge):
    """Joins the inputs along ``axis`` (their other axes equal); the gradient is split back.

    Parameters
    ----------
    axis : int
        The axis of the full tensor, batch axis included (``-1``, the last, by default; 0 is refused).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis == 0:
            raise ValueError(f"axis: expected a non-zero integer (the batch axis 0 cannot be concatenated), received {axis!r}")
        self.axis = int(axis)

    def _sample_axis(self, rank):
        axis = self.axis - 1 if self.axis > 0 else rank + self.axis
        if not 0 <= axis < rank:
            raise ValueError(f"layer {self.name!r} (Concatenate): axis {self.axis} is out of range for inputs of shape {(None, *([None] * rank))}")
        return axis

    def _check_compatible(self, shapes):
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1:
            raise ValueError(f"layer {self.name!r} (Concatenate): inputs must have equal ranks, received {', '.join(str((None, *s)) for s in shapes)}")
        axis = self._sample_axis(ranks.pop())
        others = {s[:axis] + s[axis + 1 :] for s in shapes}
        if len(others) > 1:
            raise ValueError(
                f"layer {self.name!r} (Concatenate): inputs must match on every axis but axis {self.axis}, received "
                f"{', '.join(str((None, *s)) for s in shapes)}"
            )

    def compute_output_shape(self, input_shape):
        axis = self._sample_axis(len(input_shape[0]))
        shape = list(input_shape[0])
        shape[axis] = sum(s[axis] for s in input_shape)
        return tuple(shape)

    def _three_axes(self, n, shape):
        """``(outer, length, inner)`` of a batch of ``shape`` samples around the concatenation axis."""
        axis = self._sample_axis(len(shape))
        return n * int(np.prod(shape[:axis], dtype=np.int64)), shape[axis], int(np.prod(shape[axis + 1 :], dtype=np.int64))

    def _compute(self, k, buffer, inputs):
        n = inputs[0].shape[0]
        out = buffer("y", (n, *self.output_shape))
        out3 = out.reshape(self._three_axes(n, self.output_shape))
        offset = 0
        for x, shape in zip(inputs, self.input_shape):
            x3 = x.reshape(self._three_axes(n, shape))
            k.place(x3, offset, out3)
            offset += x3.shape[1]
        return out, n

    def _backward_with(self, k, buffer, n, dLdY):
        g3 = dLdY.reshape(self._three_axes(n, self.output_shape))
        grads, offset = [], 0
        for i, shape in enumerate(self.input_shape):
            d = buffer(f"dx{i}", (n, *shape))
            d3 = d.reshape(self._three_axes(n, shape))
            k.take(g3, offset, d3)
            offset += d3.shape[1]
            grads.append(d)
        return grads

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@registry.register("dot")
class Dot(Merge):
    """Dot product of two inputs along ``axes``, per sample (Keras's ``Dot``).

    For samples ``x`` of shape ``(d,)`` and ``y`` of ``(d,)``: ``out = x . y`` of shape ``(1,)``. For
    ``(r, d)`` and ``(s, d)`` with ``axes=2``: ``out = x y^T`` of shape ``(r, s)``; the contracted axes
    may be any of the two sample axes. With ``normalize``, each input is first divided by its L2 norm
    along its axis (``out`` is then the cosine similarity), ``||x|| = sqrt(max(sum x^2, 1e-12))``.

    Parameters
    ----------
    axes : int or (int, int)
        Axis of each input to contract (batch axis included, so 1 is the first sample axis).
    normalize : bool
    """

    input_count = (2, 2)
    epsilon = 1e-12

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = tuple(axes) if isinstance(axes, (list, tuple)) else (axes, axes)
        if len(pair) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a == 0 for a in pair):
            raise ValueError(f"axes: expected a non-zero integer or a pair of them (0 is the batch axis), received {axes!r}")
        self.axes = tuple(int(a) for a in pair)
        self.normalize = validation.boolean(normalize, "normalize")

    def _sample_axes(self, shapes):
        return [a - 1 if a > 0 else len(s) + a for a, s in zip(self.axes, shapes)]

    def _check_compatible(self, shapes):
        ranks = [len(s) for s in shapes]
        if ranks[0] != ranks[1] or ranks[0] not in (1, 2):
            raise ValueError(
                f"layer {self.name!r} (Dot): expects two inputs of equal rank 2 or 3 (batch included), received "
                f"{', '.join(str((None, *s)) for s in shapes)}"
            )
        ax = self._sample_axes(shapes)
        if not all(0 <= a < r for a, r in zip(ax, ranks)):
            raise ValueError(f"layer {self.name!r} (Dot): axes {self.axes} out of range for inputs {', '.join(str((None, *s)) for s in shapes)}")
        if shapes[0][ax[0]] != shapes[1][ax[1]]:
            raise ValueError(
                f"layer {self.name!r} (Dot): axes {self.axes} of the inputs differ in size, received "
                f"{', '.join(str((None, *s)) for s in shapes)} ({shapes[0][ax[0]]} != {shapes[1][ax[1]]})"
            )

    def compute_output_shape(self, input_shape):
        ax = self._sample_axes(input_shape)
        rest = [d for i, d in enumerate(input_shape[0]) if i != ax[0]] + [d for i, d in enumerate(input_shape[1]) if i != ax[1]]
        return tuple(rest) if rest else (1,)

    def _layout(self, n):
        """How the inputs are stored as 3-D arrays and multiplied: ``(x shape, contracted axis of x,
        y shape, contracted axis of y, transpose x, transpose y)``; the product is ``(n, r, s)``."""
        sx, sy = self.input_shape
        if len(sx) == 1:
            return (n, 1, sx[0]), 2, (n, sy[0], 1), 1, False, False
        ax, ay = (a + 1 for a in self._sample_axes(self.input_shape))
        return (n, *sx), ax, (n, *sy), ay, ax == 1, ay == 2

    def _compute(self, k, buffer, inputs):
        x, y = inputs
        n = x.shape[0]
        x_shape, ax, y_shape, ay, trans_x, trans_y = self._layout(n)
        x3, y3 = x.reshape(x_shape), y.reshape(y_shape)
        norms = None
        if self.normalize:
            eps = self.dtype.type(self.epsilon)
            xn, yn = buffer("xn", x_shape), buffer("yn", y_shape)
            x_inv = buffer("x_inv", (n, x_shape[3 - ax]))
            y_inv = buffer("y_inv", (n, y_shape[3 - ay]))
            k.l2_normalize(x3, ax, eps, xn, x_inv)
            k.l2_normalize(y3, ay, eps, yn, y_inv)
            norms, x3, y3 = (x3, x_inv, y3, y_inv), xn, yn
        r = x_shape[1] if not trans_x else x_shape[2]
        s = y_shape[2] if not trans_y else y_shape[1]
        out = buffer("y", (n, r, s))
        k.batched_matmul(x3, y3, out, trans_x, trans_y)
        return out.reshape(n, *self.output_shape), (x3, y3, norms)

    def _backward_with(self, k, buffer, cache, dLdY):
        x3, y3, norms = cache
        n = x3.shape[0]
        x_shape, ax, y_shape, ay, trans_x, trans_y = self._layout(n)
        r = x_shape[1] if not trans_x else x_shape[2]
        s = y_shape[2] if not trans_y else y_shape[1]
        g = dLdY.reshape(n, r, s)
        dx, dy = buffer("dx", x_shape), buffer("dy", y_shape)
        # d(x y)/dx = g y^T and d/dy = x^T g, written straight into each input's stored layout
        if trans_x:
            k.batched_matmul(y3, g, dx, trans_y, True)
        else:
            k.batched_matmul(g, y3, dx, False, not trans_y)
        if trans_y:
            k.batched_matmul(g, x3, dy, True, trans_x)
        else:
            k.batched_matmul(x3, g, dy, not trans_x, False)
        if norms is not None:
            x_raw, x_inv, y_raw, y_inv = norms
            eps = self.dtype.type(self.epsilon)
            dxn, dyn = buffer("dxn", x_shape), buffer("dyn", y_shape)
            k.l2_normalize_backward(x_raw, x_inv, ax, eps, dx, dxn)
            k.l2_normalize_backward(y_raw, y_inv, ay, eps, dy, dyn)
            dx, dy = dxn, dyn
        return [dx.reshape(n, *self.input_shape[0]), dy.reshape(n, *self.input_shape[1])]

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes), "normalize": self.normalize}
