"""ONNX export: a built model as an ONNX graph (opset 17), for onnxruntime and other ONNX consumers.

Each built-in layer becomes a few standard operators; the graph computes what ``model.predict``
computes (inference: Dropout is the identity, BatchNormalization uses its moving statistics):

=======================  =====================================================================
layer                    ONNX operators
=======================  =====================================================================
Dense                    MatMul, Add (bias), the activation
Activation               the activation (softmax: Softmax over the last axis)
Flatten, Reshape         Reshape (batch axis kept)
Dropout                  nothing (identity at inference)
Conv1D, Conv2D           Transpose to channels-first, Conv (explicit pads for "same"/"causal"),
                         Transpose back, the activation
Max/AveragePooling1D/2D  Transpose, MaxPool / AveragePool (count_include_pad=0, as Keras), Transpose
Global pooling           ReduceMax / ReduceMean over the spatial axes (keepdims as the layer)
SimpleRNN, LSTM, GRU     RNN, LSTM, GRU (gates reordered from Keras's i,f,c,o to ONNX's i,o,f,c;
                         GRU with linear_before_reset=1, Keras 3's reset_after)
Embedding                Gather (the graph input is then int64 indices)
BatchNormalization       Mul, Add with scale = gamma / sqrt(var + eps), shift = beta - mean scale
Add, Subtract, Multiply  Add, Sub, Mul (one per further input)
Average                  Mean
Maximum, Minimum         Max, Min
Concatenate              Concat (the layer's axis counts the batch axis, as ONNX's does)
Dot                      MatMul of the inputs transposed so that the contracted axes meet, or
                         ReduceSum(Mul) for vectors; normalize=True divides each input first by
                         Sqrt(Max(ReduceSumSquare, 1e-12)) along its contracted axis
=======================  =====================================================================

Every model kind is exported: the model's nodes (layer calls) in topological order, each tensor
named once, so fan-out, several inputs and outputs, and shared layers (one converter call per
call, its weights written once) come out as the same ONNX graph. A `Sequential` model has
one input ``"input"`` and one output ``"output"``; a functional model's inputs and outputs keep the
model's ``input_names`` and ``output_names``.

Activations: linear (nothing), sigmoid, tanh, relu, leaky_relu (LeakyRelu), elu (Elu), softplus,
gelu (exact: ``x/2 (1 + Erf(x / sqrt 2))``), silu (``x Sigmoid(x)``), softmax. Inside recurrent cells
the ONNX cell activations are used (linear as ``Affine(1, 0)``).

A layer class not in this table (a layer of your own, or a subclass of a built-in one, whose
``forward`` the exporter cannot know) is refused by name before anything is written.
"""

import hashlib
import math

import numpy as np

import os

from fastdnn import layers as L

OPSET = 17  # ONNX opset of the exported graphs (onnxruntime 1.14 and later run it)
IR_VERSION = 8  # the IR version that goes with opset 17


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'fastdnn[onnx]'") from None
    return onnx


class _Graph:
    """Collects nodes and weight initializers with unique names."""

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.helper = onnx.helper
        self.dtype = np.dtype(dtype)
        self.nodes = []
        self.initializers = []
        self._count = 0
        self._constants = {}  # (dtype, shape, digest of the bytes) -> initializer name
        #: The model's input and output names: no generated name may take one.
        self.reserved = set()

    def name(self, hint):
        while True:
            self._count += 1
            name = f"{hint}_{self._count}"
            if name not in self.reserved:
                return name

    def constant(self, values, hint, dtype=None):
        """A weight or shape as an initializer; floats in the model's dtype. Equal arrays share one
        initializer (a shared layer's weights are written once however often it is called)."""
        values = np.ascontiguousarray(np.asarray(values, dtype=dtype or self.dtype))
        key = (values.dtype.str, values.shape, hashlib.sha256(values.tobytes()).digest())
        if key not in self._constants:
            self._constants[key] = self.name(hint)
            self.initializers.append(self.onnx.numpy_helper.from_array(values, self._constants[key]))
        return self._constants[key]

    def op(self, op_type, inputs, hint=None, outputs=1, **attributes):
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, **attributes))
        return names[0] if outputs == 1 else names


# -- activations -------------------------------------------------------------------------------------

def _activation(graph, activation, x):
    """The ONNX form of an elementwise activation (or softmax over the last axis) of ``x``."""
    name = activation.name
    if name == "linear":
        return x
    if name in ("sigmoid", "tanh", "relu", "softplus"):
        return graph.op({"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softplus": "Softplus"}[name], [x])
    if name == "leaky_relu":
        return graph.op("LeakyRelu", [x], alpha=activation.alpha)
    if name == "elu":
        return graph.op("Elu", [x], alpha=activation.alpha)
    if name == "softmax":
        return graph.op("Softmax", [x], axis=-1)
    if name == "silu":
        return graph.op("Mul", [x, graph.op("Sigmoid", [x])])
    if name == "gelu":
        scaled = graph.op("Mul", [x, graph.constant(1.0 / math.sqrt(2.0), "inv_sqrt2")])
        one_plus = graph.op("Add", [graph.op("Erf", [scaled]), graph.constant(1.0, "one")])
        return graph.op("Mul", [graph.op("Mul", [x, graph.constant(0.5, "half")]), one_plus])
    raise ValueError(f"activation: {name!r} has no ONNX export")


def _cell_activation(activation):
    """``(name, alpha, beta)`` of an ONNX recurrent-cell activation."""
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softplus": "Softplus"}
    if activation.name in simple:
        return simple[activation.name], None, None
    if activation.name == "linear":
        return "Affine", 1.0, 0.0
    if activation.name == "leaky_relu":
        return "LeakyRelu", activation.alpha, None
    raise ValueError(f"activation: {activation.name!r} has no ONNX recurrent-cell form")


# -- layers ------------------------------------------------------------------------------------------

def _dense(graph, layer, x):
    y = graph.op("MatMul", [x, graph.constant(layer.params["W"], "kernel")])
    if layer.use_bias:
        y = graph.op("Add", [y, graph.constant(layer.params["b"], "bias")])
    return _activation(graph, layer.activation, y)


def _activation_layer(graph, layer, x):
    return _activation(graph, layer.activation, x)


def _reshape(graph, layer, x):
    shape = graph.constant([-1, *layer.output_shape], "shape", dtype=np.int64)
    return graph.op("Reshape", [x, shape])


def _identity(graph, layer, x):
    return x


def _to_channels_first(graph, x, rank):
    return graph.op("Transpose", [x], perm=[0, rank + 1, *range(1, rank + 1)])


def _to_channels_last(graph, x, rank):
    return graph.op("Transpose", [x], perm=[0, *range(2, rank + 2), 1])


def _pads(layer, sizes, dilations):
    """ONNX ``pads`` (all befores, then all afters) reproducing the layer's padding."""
    from fastdnn.layers.conv import padding_amounts

    before, after = [], []
    for axis in range(layer.rank):
        length = layer.input_shape[axis]
        pad, out = padding_amounts(length, sizes[axis], layer.strides[axis], dilations[axis], layer.padding)
        eff = (sizes[axis] - 1) * dilations[axis] + 1
        before.append(pad)
        # Enough after the input for the last window; extra rows beyond it are never read.
        after.append(max((out - 1) * layer.strides[axis] + eff - length - pad, 0))
    return before + after


def _conv(graph, layer, x):
    rank = layer.rank
    # Keras's kernel (k..., C, filters) -> ONNX's (filters, C, k...)
    kernel = np.transpose(layer.params["W"], (rank + 1, rank, *range(rank)))
    inputs = [_to_channels_first(graph, x, rank), graph.constant(kernel, "kernel")]
    if layer.use_bias:
        inputs.append(graph.constant(layer.params["b"], "bias"))
    y = graph.op(
        "Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
        dilations=list(layer.dilation_rate), pads=_pads(layer, layer.kernel_size, layer.dilation_rate),
    )
    return _activation(graph, layer.activation, _to_channels_last(graph, y, rank))


def _pooling(graph, layer, x):
    rank = layer.rank
    attributes = {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides), "pads": _pads(layer, layer.pool_size, (1,) * rank)}
    if layer.kind == "max":
        y = graph.op("MaxPool", [_to_channels_first(graph, x, rank)], **attributes)
    else:
        y = graph.op("AveragePool", [_to_channels_first(graph, x, rank)], count_include_pad=0, **attributes)
    return _to_channels_last(graph, y, rank)


def _global_pooling(graph, layer, x):
    op = "ReduceMax" if layer.kind == "max" else "ReduceMean"
    return graph.op(op, [x], axes=list(range(1, layer.rank + 1)), keepdims=int(layer.keepdims))


def _embedding(graph, layer, x):
    return graph.op("Gather", [graph.constant(layer.params["embeddings"], "embeddings"), x], axis=0)


def _batch_normalization(graph, layer, x):
    variance = layer.state["moving_variance"].astype(np.float64)
    scale = 1.0 / np.sqrt(variance + layer.epsilon)
    if layer.scale:
        scale = scale * layer.params["gamma"]
    shift = -layer.state["moving_mean"] * scale
    if layer.center:
        shift = shift + layer.params["beta"]
    y = graph.op("Mul", [x, graph.constant(scale, "bn_scale")])
    return graph.op("Add", [y, graph.constant(shift, "bn_shift")])


def _gate_blocks(array, order, units):
    """Reorder gate blocks along the last axis (``order`` lists Keras's block index for each ONNX block)."""
    return np.concatenate([array[..., g * units:(g + 1) * units] for g in order], axis=-1)


def _recurrent(graph, layer, x):
    """ONNX RNN / LSTM / GRU, time-major, one direction; the output back to batch-major."""
    units = layer.units
    op, order = {L.SimpleRNN: ("RNN", [0]), L.LSTM: ("LSTM", [0, 3, 1, 2]), L.GRU: ("GRU", [0, 1, 2])}[type(layer)]
    W = _gate_blocks(layer.params["W"], order, units).T[None]  # (1, G units, features)
    R = _gate_blocks(layer.params["U"], order, units).T[None]  # (1, G units, units)
    G = len(order)
    if not layer.use_bias:
        bias = np.zeros(2 * G * units)
    elif op == "GRU":  # (2, 3 units): input bias, recurrent bias
        bias = np.concatenate([_gate_blocks(layer.params["b"][0], order, units), _gate_blocks(layer.params["b"][1], order, units)])
    else:
        bias = np.concatenate([_gate_blocks(layer.params["b"], order, units), np.zeros(G * units)])
    cells = [layer.cell_activation] if op == "RNN" else [layer.recurrent_activation, layer.cell_activation]
    if op == "LSTM":
        cells.append(layer.cell_activation)  # f (gates), g (candidate), h (output): Keras uses activation twice
    names, alphas, betas = zip(*(_cell_activation(a) for a in cells))
    attributes = {"hidden_size": units, "activations": list(names)}
    # Only the activations that take an alpha (beta) consume an entry of activation_alpha (_beta), in
    # order: onnxruntime's reading of the spec.
    if any(a is not None for a in alphas):
        attributes["activation_alpha"] = [float(a) for a in alphas if a is not None]
    if any(b is not None for b in betas):
        attributes["activation_beta"] = [float(b) for b in betas if b is not None]
    if op == "GRU":
        attributes["linear_before_reset"] = 1
    time_major = graph.op("Transpose", [x], perm=[1, 0, 2])
    inputs = [time_major, graph.constant(W, "W"), graph.constant(R, "R"), graph.constant(bias[None], "B")]
    outputs = graph.op(op, inputs, outputs=2, **attributes)  # Y (T, 1, n, units), Y_h (1, n, units)
    if layer.return_sequences:
        sequence = graph.op("Squeeze", [outputs[0], graph.constant([1], "axis", dtype=np.int64)])
        return graph.op("Transpose", [sequence], perm=[1, 0, 2])
    return graph.op("Squeeze", [outputs[1], graph.constant([0], "axis", dtype=np.int64)])


CONVERTERS = {
    L.Dense: _dense,
    L.Activation: _activation_layer,
    L.Flatten: _reshape,
    L.Reshape: _reshape,
    L.Dropout: _identity,
    L.Conv1D: _conv,
    L.Conv2D: _conv,
    L.MaxPooling1D: _pooling,
    L.MaxPooling2D: _pooling,
    L.AveragePooling1D: _pooling,
    L.AveragePooling2D: _pooling,
    L.GlobalMaxPooling1D: _global_pooling,
    L.GlobalMaxPooling2D: _global_pooling,
    L.GlobalAveragePooling1D: _global_pooling,
    L.GlobalAveragePooling2D: _global_pooling,
    L.SimpleRNN: _recurrent,
    L.LSTM: _recurrent,
    L.GRU: _recurrent,
    L.Embedding: _embedding,
    L.BatchNormalization: _batch_normalization,
}


def _merge(op):
    def convert(graph, layer, xs):
        if len(xs) == 1:
            return xs[0]
        if op in ("Mean", "Max", "Min"):  # variadic in ONNX
            return graph.op(op, list(xs))
        y = xs[0]
        for x in xs[1:]:
            y = graph.op(op, [y, x])
        return y

    return convert


def _concatenate(graph, layer, xs):
    return graph.op("Concat", list(xs), axis=layer._sample_axis(len(layer.input_shape[0])) + 1)


def _l2_normalized(graph, layer, x, axis):
    """``x / sqrt(max(sum x^2 along axis, epsilon))``, the layer's normalization."""
    squares = graph.op("ReduceSumSquare", [x], axes=[axis], keepdims=1)
    norm = graph.op("Sqrt", [graph.op("Max", [squares, graph.constant(layer.epsilon, "epsilon")])])
    return graph.op("Div", [x, norm])


def _dot(graph, layer, xs):
    x, y = xs
    ax, ay = (a + 1 for a in layer._sample_axes(layer.input_shape))
    if layer.normalize:
        x, y = _l2_normalized(graph, layer, x, ax), _l2_normalized(graph, layer, y, ay)
    if len(layer.input_shape[0]) == 1:  # vectors: (n, d) . (n, d) -> (n, 1)
        return graph.op("ReduceSum", [graph.op("Mul", [x, y]), graph.constant([1], "axes", dtype=np.int64)], keepdims=1)
    # (n, r, d) @ (n, d, s) -> (n, r, s): the remaining axes of x, then of y, as Keras orders them
    if ax == 1:
        x = graph.op("Transpose", [x], perm=[0, 2, 1])
    if ay == 2:
        y = graph.op("Transpose", [y], perm=[0, 2, 1])
    return graph.op("MatMul", [x, y])


CONVERTERS.update({
    L.Add: _merge("Add"),
    L.Subtract: _merge("Sub"),
    L.Multiply: _merge("Mul"),
    L.Average: _merge("Mean"),
    L.Maximum: _merge("Max"),
    L.Minimum: _merge("Min"),
    L.Concatenate: _concatenate,
    L.Dot: _dot,
})


def check_exportable(model):
    """Refuse, by name, any layer (or activation) that has no ONNX form: before anything is written."""
    integer_inputs = set()
    for node in model.nodes:
        layer = node.layer
        if isinstance(layer, L.Embedding):
            source = node.inputs[0]
            if not any(source is t for t in model.inputs):
                raise ValueError(f"model: Embedding {layer.name!r} must read a model input to be exported (it takes the integer input)")
            integer_inputs.add(id(source))
    for node in model.nodes:
        if not isinstance(node.layer, L.Embedding) and any(id(t) in integer_inputs for t in node.inputs):
            raise ValueError(
                f"model: layer {node.layer.name!r} reads the integer input of an Embedding; ONNX gives that input one type (int64)"
            )
    for layer in model.layers:
        converter = CONVERTERS.get(type(layer))  # exact type: a subclass may compute something else
        if converter is None:
            supported = ", ".join(sorted(cls.__name__ for cls in CONVERTERS))
            raise ValueError(
                f"model: layer {layer.name!r} ({type(layer).__name__}) has no ONNX export; supported layers: {supported}"
            )
        for activation in (getattr(layer, "activation", None), getattr(layer, "cell_activation", None)):
            if activation is not None and activation.name not in _EXPORTED_ACTIVATIONS:
                raise ValueError(f"model: layer {layer.name!r} uses activation {activation.name!r}, which has no ONNX export")


_EXPORTED_ACTIVATIONS = {"linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu", "softmax"}


def to_onnx(model):
    """The ``onnx.ModelProto`` of a built model (any `fastdnn.Model`; see the module's notes for the
    names of its inputs and outputs). An input read by an Embedding is int64 indices, the others float
    in the model's dtype; every input and output has a dynamic batch axis."""
    from fastdnn.model import Model, Sequential

    onnx = _onnx()
    if not isinstance(model, Model):
        raise TypeError(f"model: expected a fastdnn model (fd.Model or fd.Sequential), received {type(model).__name__}")
    if not model.built:
        raise ValueError("model: the model must be built (call fit, predict or build first) to be exported")
    check_exportable(model)
    graph = _Graph(onnx, model.dtype)
    float_type = onnx.helper.np_dtype_to_tensor_dtype(graph.dtype)
    sequential = isinstance(model, Sequential)
    input_names = ["input"] if sequential else list(model.input_names)
    output_names = ["output"] if sequential else list(model.output_names)
    graph.reserved.update(input_names + output_names)
    integer_inputs = {id(node.inputs[0]) for node in model.nodes if isinstance(node.layer, L.Embedding)}
    names = {id(tensor): name for tensor, name in zip(model.inputs, input_names)}
    for node in model.nodes:
        sources = [names[id(t)] for t in node.inputs]
        converter = CONVERTERS[type(node.layer)]
        names[id(node.output)] = converter(graph, node.layer, sources if node.layer.multiple_inputs else sources[0])
    for tensor, name in zip(model.outputs, output_names):
        graph.nodes.append(onnx.helper.make_node("Identity", [names[id(tensor)]], [name]))
    inputs = [
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT64 if id(t) in integer_inputs else float_type, ["batch", *t.sample_shape])
        for t, name in zip(model.inputs, input_names)
    ]
    outputs = [onnx.helper.make_tensor_value_info(name, float_type, ["batch", *t.sample_shape]) for t, name in zip(model.outputs, output_names)]
    proto = onnx.helper.make_graph(graph.nodes, model.name, inputs, outputs, initializer=graph.initializers)
    exported = onnx.helper.make_model(proto, producer_name="fastdnn", opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    exported.ir_version = IR_VERSION
    onnx.checker.check_model(exported, full_check=True)
    return exported


def save_onnx(model, path):
    """Write ``model`` as an ONNX file at ``path`` (checked by ``onnx.checker`` first, written atomically)."""
    data = to_onnx(model).SerializeToString()
    path = os.fspath(path)
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
