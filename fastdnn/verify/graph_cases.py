"""Check cases for the computational graph: every merge layer, and whole graph models.

Merge layers take several inputs, so each input is an argument of its own (``x0``, ``x1``, ...).
Graph models are checked end to end like `cases.model_cases`: the loss (the weighted sum over
outputs) against every parameter, through fan-out (a tensor read by several layers), sharing (a
layer called on two tensors), several inputs and several outputs with loss weights.
"""

import numpy as np

import fastdnn as fd
from fastdnn.verify.gradcheck import GradientCase

FLOAT64 = np.float64
#: Spacing of Maximum/Minimum inputs: far above the finite-difference step, so no perturbation swaps a winner.
TIE_SPACING = 0.05


def _normal(rng, shapes):
    return [rng.normal(size=shape) for shape in shapes], ""


def _distinct(rng, shapes):
    sizes = [int(np.prod(s)) for s in shapes]
    values = (rng.permutation(sum(sizes)) - sum(sizes) / 2.0) * TIE_SPACING
    parts = np.split(values, np.cumsum(sizes)[:-1])
    return [p.reshape(s) for p, s in zip(parts, shapes)], f"distinct inputs {TIE_SPACING} apart (no ties for the extreme)"


def _merge_variants():
    """(label, registered name, factory, input shapes with batch, input maker, mode)."""
    L = fd.layers
    yield "Add", "add", L.Add, [(3, 4), (3, 4)], _normal, "full"
    yield "Add(3 inputs)", "add", L.Add, [(1, 2, 3), (1, 2, 3), (1, 2, 3)], _normal, "full"
    yield "Subtract", "subtract", L.Subtract, [(2, 5), (2, 5)], _normal, "full"
    yield "Multiply(3 inputs)", "multiply", L.Multiply, [(2, 4), (2, 4), (2, 4)], _normal, "full"
    yield "Multiply", "multiply", L.Multiply, [(16, 30), (16, 30)], _normal, "random"
    yield "Average(3 inputs)", "average", L.Average, [(2, 3), (2, 3), (2, 3)], _normal, "full"
    yield "Maximum(3 inputs)", "maximum", L.Maximum, [(2, 4), (2, 4), (2, 4)], _distinct, "full"
    yield "Minimum", "minimum", L.Minimum, [(3, 2, 2), (3, 2, 2)], _distinct, "full"
    yield "Concatenate(axis=-1)", "concatenate", L.Concatenate, [(2, 3), (2, 2), (2, 1)], _normal, "full"
    yield "Concatenate(axis=1)", "concatenate", lambda: L.Concatenate(axis=1), [(2, 2, 3), (2, 1, 3)], _normal, "full"
    yield "Dot(axes=1)", "dot", lambda: L.Dot(axes=1), [(3, 4), (3, 4)], _normal, "full"
    yield "Dot(axes=1, normalize)", "dot", lambda: L.Dot(axes=1, normalize=True), [(3, 4), (3, 4)], _normal, "full"
    yield "Dot(axes=(2, 2))", "dot", lambda: L.Dot(axes=(2, 2)), [(2, 3, 4), (2, 2, 4)], _normal, "full"
    yield "Dot(axes=(1, 2), normalize)", "dot", lambda: L.Dot(axes=(1, 2), normalize=True), [(2, 4, 3), (2, 2, 4)], _normal, "full"


def merge_cases(rng):
    """A `GradientCase` per merge-layer variant: every input and the output's gradient."""
    for label, registered, factory, shapes, make, mode in _merge_variants():
        layer = factory()
        layer.build([s[1:] for s in shapes], dtype=FLOAT64)
        xs, note = make(rng, shapes)
        op = f"layer:{label} {' + '.join('x'.join(map(str, s)) for s in shapes)}->{'x'.join(map(str, (shapes[0][0], *layer.output_shape)))}"
        case = merge_case(op, layer, xs, note)
        case.covers = f"layer:{registered}"
        yield case, mode


def merge_case(op, layer, xs, note=""):
    """The case of a multi-input layer on the arrays ``xs`` (arguments ``x0``, ``x1``, ...)."""
    arguments = {f"x{i}": x for i, x in enumerate(xs)}

    def forward():
        return layer.forward(xs, training=True)

    def backward(dLdY):
        grads = layer.backward(np.ascontiguousarray(dLdY, dtype=FLOAT64))
        return {f"x{i}": g for i, g in enumerate(grads)}

    return GradientCase(op=op, arguments=arguments, forward=forward, backward=backward, note=note)


# -- whole graph models -------------------------------------------------------------------------------


def _residual():
    L = fd.layers
    x = fd.Input((5,), name="x")
    h = L.Dense(5, activation="tanh", name="inner")(x)
    h = L.Dense(5, name="project")(h)
    r = L.Activation("tanh", name="after_add")(L.Add(name="skip")([x, h]))
    return fd.Model(x, L.Dense(3, activation="softmax", name="out")(r)), "sparse_categorical_crossentropy", None


def _two_inputs():
    L = fd.layers
    a, b = fd.Input((4,), name="a"), fd.Input((3,), name="b")
    joined = L.Concatenate(name="join")([L.Dense(3, activation="tanh", name="from_a")(a), L.Dense(2, activation="gelu", name="from_b")(b)])
    return fd.Model([a, b], L.Dense(2, activation="sigmoid", name="out")(joined)), "binary_crossentropy", None


def _two_outputs():
    L = fd.layers
    x = fd.Input((4,), name="x")
    h = L.Dense(6, activation="tanh", name="trunk")(x)
    classes = L.Dense(3, activation="softmax", name="classes")(h)
    value = L.Dense(2, name="value")(h)
    model = fd.Model(x, {"classes": classes, "value": value})
    return model, {"classes": "categorical_crossentropy", "value": "mse"}, {"classes": 1.0, "value": 0.3}


def _shared_layer():
    L = fd.layers
    a, b = fd.Input((4,), name="a"), fd.Input((4,), name="b")
    shared = L.Dense(3, activation="tanh", name="shared")
    left = shared(a)
    right = shared(L.Dense(4, activation="silu", name="turn")(b))
    product = L.Multiply(name="product")([left, right])
    return fd.Model([a, b], L.Dense(2, name="out")(L.Subtract(name="difference")([product, right]))), "mse", None


def _fan_out():
    L = fd.layers
    x = fd.Input((3,), name="x")
    h = L.Dense(4, activation="tanh", name="read_thrice")(x)
    branches = [L.Dense(3, activation=a, name=f"branch_{a}")(h) for a in ("tanh", "sigmoid", "linear")]
    merged = L.Average(name="mean")([L.Maximum(name="most")(branches[:2]), branches[2]])
    return fd.Model(x, L.Dense(3, activation="softmax", name="out")(merged)), "categorical_crossentropy", None


def _shared_output():
    L = fd.layers
    a, b = fd.Input((3,), name="a"), fd.Input((3,), name="b")
    head = L.Dense(2, activation="softmax", name="head")  # shared, so not fused: probabilities into the loss
    hidden = L.Dense(3, activation="tanh", name="hidden")
    return fd.Model([a, b], [head(hidden(a)), head(b)]), "categorical_crossentropy", [0.7, 1.0]


GRAPH_MODELS = [
    ("residual block (Add skip)", _residual),
    ("two inputs (Concatenate)", _two_inputs),
    ("two outputs with loss weights", _two_outputs),
    ("a layer shared by two branches", _shared_layer),
    ("one tensor read by three layers", _fan_out),
    ("a shared output layer (unfused losses)", _shared_output),
]


def random_targets(rng, model, n):
    """Valid targets for ``n`` samples of each output of a compiled model (one array alone, else a list)."""
    targets = []
    for output in model._outputs:
        width = output.shape[-1]
        rows = (n, *output.shape[:-1])
        name = output.loss.name
        if name == "sparse_categorical_crossentropy":
            targets.append(rng.integers(0, width, rows))
        elif name == "categorical_crossentropy":
            targets.append(np.eye(width)[rng.integers(0, width, rows)])
        elif name == "binary_crossentropy":
            targets.append(rng.integers(0, 2, (*rows, width)).astype(FLOAT64))
        else:
            targets.append(rng.normal(size=(*rows, width)))
    return targets[0] if len(targets) == 1 else targets


def graph_model_cases(rng, device="cpu"):
    """Float64 graph models whose loss gradient is checked end to end (see `cases.model_case`)."""
    from fastdnn.verify.cases import model_case

    for label, build in GRAPH_MODELS:
        fd.config.set_floatx("float64")
        try:
            model, loss, weights = build()
            model.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss=loss, loss_weights=weights, device=device)
        finally:
            fd.config.set_floatx("float32")
        n = 4
        x = [rng.normal(size=(n, *t.sample_shape)) for t in model.inputs]
        yield model_case(f"model:graph: {label}", model, x[0] if len(x) == 1 else x, random_targets(rng, model, n)), "full"
