"""Check cases for everything fastdnn registers: activations, losses, layers and optimizers.

`gradient_cases()` walks the registries and yields a `GradientCase` (fastdnn/verify/gradcheck.py) for every
activation, loss and layer, on shapes that include a batch of 1 and non-square matrices, plus whole
small models through the fused softmax/sigmoid + crossentropy paths. `update_rule_cases()` yields an
`UpdateRuleCase` for every registered optimizer name and every option. `uncovered()` lists what is
registered but has no case: the test suite fails on it, so nothing lands unchecked.
"""

from dataclasses import dataclass

import numpy as np

import fastdnn as fd
from fastdnn.verify import reference
from fastdnn.verify.gradcheck import GradientCase

FLOAT64 = np.float64

#: Registered layers that compute nothing to differentiate, with the reason.
EXEMPT_LAYERS = {"inputlayer": "declares the input shape of a model; computes nothing"}

#: Activations whose derivative jumps (or whose second derivative jumps) at 0.
KINKS = {"relu": 0.0, "leaky_relu": 0.0, "elu": 0.0}
KINK_MARGIN = 0.01

#: Activation options beyond the defaults.
ACTIVATION_OPTIONS = {"leaky_relu": [{"negative_slope": 0.1}], "elu": [{"alpha": 0.5}]}

#: (batch, n_in, n_out) for layer cases: a batch of 1, non-square and square weights (where a
#: transposed matrix would go unnoticed by shapes alone), and one larger case for random mode.
LAYER_SHAPES = [((1, 3, 4), "full"), ((3, 5, 2), "full"), ((2, 4, 4), "full"), ((16, 24, 12), "random")]
ACTIVATION_SHAPES = [((1, 4), "full"), ((3, 5), "full"), ((32, 40), "random")]
LOSS_SHAPES = [((1, 3), "full"), ((4, 5), "full")]


def _away_from_kinks(values, name):
    if name not in KINKS:
        return values, ""
    kink = KINKS[name]
    moved = np.where(np.abs(values - kink) < KINK_MARGIN, kink + np.sign(values - kink + 1e-300) * KINK_MARGIN * 2, values)
    return moved, f"inputs at least {KINK_MARGIN} away from the kink at {kink}"


def _shape_label(shape):
    return "x".join(map(str, shape))


# -- activations ------------------------------------------------------------------------------------


def activation_cases(rng):
    for name, function in fd.activations.registry.canonical_items():
        variants = [function] + [function.with_params(**params) for params in ACTIVATION_OPTIONS.get(name, [])]
        for variant in variants:
            for shape, mode in ACTIVATION_SHAPES:
                z, note = _away_from_kinks(rng.normal(0.0, 2.0, shape), name)
                label = ", ".join(f"{k}={v}" for k, v in variant.params.items())
                label = f"{name}({label})" if label else name
                yield _activation_case(f"activation:{label} {_shape_label(shape)}", variant, z, note), mode


def _activation_case(op, function, z, note):
    return GradientCase(
        op=op,
        covers=f"activation:{function.name}",
        arguments={"x": z},
        forward=lambda: function(z),
        backward=lambda dLdY: {"x": function.backward(z, dLdY)},
        note=note,
    )


# -- losses -----------------------------------------------------------------------------------------


def _loss_inputs(name, from_logits, shape, rng):
    n, d = shape
    note = ""
    if name in ("mean_squared_error", "mean_absolute_error"):
        t = rng.normal(size=shape)
        p = rng.normal(size=shape)
        if name == "mean_absolute_error":
            p = np.where(np.abs(p - t) < KINK_MARGIN, t + 2 * KINK_MARGIN, p)
            note = f"predictions at least {KINK_MARGIN} away from the kink at y_true"
        return t, p, note
    if from_logits:
        p = rng.normal(0.0, 2.0, shape)
    elif name == "binary_crossentropy":
        p = rng.uniform(0.05, 0.95, shape)
        note = "probabilities in [0.05, 0.95], inside the clip range"
    else:
        p = rng.uniform(0.2, 1.0, shape)
        p /= p.sum(axis=1, keepdims=True)
        note = "rows of positive probabilities summing to 1, inside the clip range"
    if name == "sparse_categorical_crossentropy":
        t = rng.integers(0, d, n)
    elif name == "categorical_crossentropy":
        t = np.eye(d)[rng.integers(0, d, n)]
    else:
        t = rng.integers(0, 2, shape).astype(FLOAT64)
    return t, p, note


#: Kinds of target rows every loss with dense targets is checked on: a crossentropy whose gradient
#: silently assumes rows summing to 1 fails on the last three.
TARGET_KINDS = ("one-hot", "multi-hot", "soft", "all-zero")


def target_rows(kind, shape, rng):
    """``shape`` targets whose every row is of ``kind`` (see `TARGET_KINDS`)."""
    n, d = shape
    if kind == "one-hot":
        return np.eye(d)[rng.integers(0, d, n)]
    if kind == "multi-hot":  # at least two ones per row where there is room
        t = (rng.uniform(size=shape) < 0.5).astype(FLOAT64)
        t[:, : min(2, d)] = 1.0
        return rng.permuted(t, axis=1)
    if kind == "soft":  # label-smoothing-like rows that do not sum to 1
        return rng.uniform(0.05, 0.95, shape)
    if kind == "all-zero":
        return np.zeros(shape)
    raise ValueError(f"kind: expected one of {TARGET_KINDS}, received {kind!r}")


def loss_cases(rng):
    for name, cls in fd.losses.registry.canonical_items():
        logits_options = [False, True] if cls.logits_kernel is not None else [False]
        for from_logits in logits_options:
            loss = cls(from_logits=from_logits) if cls.logits_kernel is not None else cls()
            suffix = " from_logits" if from_logits else ""
            for shape, mode in LOSS_SHAPES:
                t, p, note = _loss_inputs(name, from_logits, shape, rng)
                yield _loss_case(f"loss:{name}{suffix} {_shape_label(shape)}", loss, t, p, note), mode
            if name.startswith("sparse"):
                continue  # integer labels: one class per row by construction
            shape = LOSS_SHAPES[-1][0]
            for kind in TARGET_KINDS:
                _, p, note = _loss_inputs(name, from_logits, shape, rng)
                t = target_rows(kind, shape, rng)
                if name == "mean_absolute_error":
                    p = np.where(np.abs(p - t) < KINK_MARGIN, t + 2 * KINK_MARGIN, p)
                yield _loss_case(f"loss:{name}{suffix} {kind} targets {_shape_label(shape)}", loss, t, p, note), "full"


def _loss_case(op, loss, t, p, note):
    return GradientCase(
        op=op,
        covers=f"loss:{loss.name}",
        arguments={"y_pred": p},
        forward=lambda: np.array(loss(t, p)),
        backward=lambda dLdY: {"y_pred": float(dLdY) * loss.gradient(t, p)},
        note=note,
    )


# -- layers -----------------------------------------------------------------------------------------


@dataclass
class LayerVariant:
    """One configuration of a registered layer and the inputs its cases run on.

    Parameters
    ----------
    label : str
        Name in reports, e.g. ``"Conv2D(3, k=3, same, tanh)"``.
    registered : str
        The registry name the cases cover.
    factory : callable
        ``factory(units)`` -> an unbuilt layer; ``units`` is ``n_out`` of `LAYER_SHAPES` for the
        Dense-style cases (``inputs is None``), None otherwise.
    inputs : list of ((batch, *sample shape), mode), optional
        Input shapes; None: the Dense-style `LAYER_SHAPES`, ``(n, n_in)`` inputs, shape-preserving
        layers getting ``n_in = n_out``.
    make_input : callable (rng, shape) -> (x, note), optional
        How inputs are drawn (standard normal by default).
    prepare : callable (layer, x, rng) -> note, optional
        Run after building (and after `randomize` when set): steer pre-activations off kinks, set state.
    randomize : bool
        Draw every parameter from N(0, 0.5^2) instead of its initializer, so that zero biases and unit
        scales hide no term of the gradient.
    differentiate_input : bool
        Whether ``x`` is an argument (False for integer inputs: the layer gets ``compute_input_grad = False``).
    before_forward : callable (layer) -> None, optional
        Called before every forward pass (re-seeding a dropout mask, so that every call draws the same one).
    """

    label: str
    registered: str
    factory: object
    inputs: list = None
    make_input: object = None
    prepare: object = None
    randomize: bool = False
    differentiate_input: bool = True
    before_forward: object = None


def _legacy_variants(name, cls):
    """Dense, Activation and any other layer without listed variants (taken as shape-preserving)."""
    if cls is fd.layers.Dense:
        for activation in fd.activations.registry.names():
            yield LayerVariant(f"Dense({activation})", name, lambda units, a=activation: fd.layers.Dense(units, activation=a))
        yield LayerVariant("Dense(tanh, no bias)", name, lambda units: fd.layers.Dense(units, activation="tanh", use_bias=False))
        slope = fd.activations.get("leaky_relu", negative_slope=0.1)
        yield LayerVariant("Dense(leaky_relu 0.1)", name, lambda units: fd.layers.Dense(units, activation=slope))
    elif cls is fd.layers.Activation:
        for activation in fd.activations.registry.names():
            yield LayerVariant(f"Activation({activation})", name, lambda units, a=activation: fd.layers.Activation(a))
    else:
        yield LayerVariant(cls.__name__, name, lambda units, cls=cls: cls())


def _layer_variants():
    """A `LayerVariant` for every configuration of every registered layer that computes something."""
    for name, cls in fd.layers.registry.canonical_items():
        if name in EXEMPT_LAYERS:
            continue
        listed = LAYER_VARIANTS.get(name)
        if listed is None:
            yield from _legacy_variants(name, cls)
        else:
            for variant in listed():
                variant.registered = name
                yield variant


def layer_cases(rng):
    for variant in _layer_variants():
        if variant.inputs is None:
            yield from _dense_style_cases(variant, rng)
            continue
        for shape, mode in variant.inputs:
            layer = variant.factory(None)
            layer.build(tuple(shape[1:]), dtype=FLOAT64)
            x, note = (variant.make_input or _normal_input)(rng, shape)
            if variant.randomize:
                for value in layer.params.values():
                    value[...] = rng.normal(0.0, 0.5, value.shape)
            notes = [note, variant.prepare(layer, x, rng) if variant.prepare else ""]
            if not variant.differentiate_input:
                layer.compute_input_grad = False
            op = f"layer:{variant.label} {_shape_label(shape)}->{_shape_label((shape[0], *layer.output_shape))}"
            case = _layer_case(op, layer, x, "; ".join(n for n in notes if n), variant.differentiate_input, variant.before_forward)
            case.covers = f"layer:{variant.registered}"
            yield case, mode


def _dense_style_cases(variant, rng):
    for (n, n_in, n_out), mode in LAYER_SHAPES:
        layer = variant.factory(n_out)
        if not isinstance(layer, fd.layers.Dense):
            n_in = n_out  # shape-preserving layers
        layer.build((n_in,), dtype=FLOAT64)
        x = rng.normal(size=(n, n_in))
        activation = getattr(layer, "activation", None)
        note = _keep_preactivation_off_kinks(layer, x) if activation is not None and activation.name in KINKS else ""
        case = _layer_case(f"layer:{variant.label} {n}x{n_in}->{layer.output_shape[-1]}", layer, x, note)
        case.covers = f"layer:{variant.registered}"
        yield case, mode


def _normal_input(rng, shape):
    return rng.normal(size=shape), ""


def _keep_preactivation_off_kinks(layer, x):
    """Move pre-activations at least KINK_MARGIN from the kink: shift a Dense bias, or the inputs."""
    if isinstance(layer, fd.layers.Dense):
        if not layer.use_bias:
            raise ValueError(f"{layer.name}: a kinked activation case needs a bias to steer pre-activations")
        b = layer.params["b"]
        z = x @ layer.params["W"] + b
        for j in range(z.shape[1]):
            while np.min(np.abs(z[:, j])) < KINK_MARGIN:
                b[j] += 3 * KINK_MARGIN
                z[:, j] += 3 * KINK_MARGIN
    else:
        x[...] = _away_from_kinks(x, layer.activation.name)[0]
    return f"pre-activations at least {KINK_MARGIN} away from the kink at 0"


def _layer_case(op, layer, x, note, differentiate_input=True, before_forward=None):
    arguments = {"x": x, **layer.params} if differentiate_input else dict(layer.params)

    def forward():
        if before_forward is not None:
            before_forward(layer)
        return layer.forward(x, training=True)

    def backward(dLdY):
        dX = layer.backward(np.ascontiguousarray(dLdY, dtype=FLOAT64))
        grads = {key: grad for key, grad in layer.grads.items()}
        return {"x": dX, **grads} if differentiate_input else grads

    return GradientCase(op=op, arguments=arguments, forward=forward, backward=backward, note=note)


# -- the other layer kinds: their variants and inputs -------------------------------------------------

#: Spacing of max-pooling inputs: far above the finite-difference step, so no perturbation reorders a window.
TIE_SPACING = 0.05


def _distinct_input(rng, shape):
    """A shuffled grid: every value distinct, neighbours TIE_SPACING apart (max pooling has no ties)."""
    size = int(np.prod(shape))
    values = (rng.permutation(size) - size / 2.0) * TIE_SPACING
    return values.reshape(shape), f"distinct inputs {TIE_SPACING} apart (no ties for the maximum)"


def _conv_off_kinks(layer, x, rng):
    """Shift each filter's bias until its pre-activations (from the reference) are off the kink at 0."""
    if layer.activation.name not in KINKS:
        return ""
    one = (1,) * (2 - layer.rank)
    x4 = x.reshape(x.shape[0], *one, *x.shape[1:])
    K = layer.params["W"].reshape(*one, *layer.params["W"].shape)
    b = layer.params["b"]
    for _ in range(100):
        z, _ = reference.conv_forward(
            x4, K, b, (*one, *layer.strides), layer.padding, (*one, *layer.dilation_rate)
        )
        near = np.min(np.abs(z.reshape(-1, z.shape[-1])), axis=0) < KINK_MARGIN
        if not near.any():
            break
        b[near] += 3 * KINK_MARGIN
    return f"pre-activations at least {KINK_MARGIN} away from the kink at 0"


def _conv_variants():
    C2, C1 = fd.layers.Conv2D, fd.layers.Conv1D
    specs = [
        ("Conv2D(3, k=3x2, s=2x1, same, tanh)", lambda: C2(3, (3, 2), strides=(2, 1), padding="same", activation="tanh"), [((2, 5, 4, 2), "full")]),
        ("Conv2D(2, k=3, valid)", lambda: C2(2, 3), [((1, 5, 5, 3), "full"), ((2, 4, 3, 1), "full")]),
        ("Conv2D(3, k=2, s=2, valid, relu)", lambda: C2(3, 2, strides=2, activation="relu"), [((2, 5, 5, 2), "full")]),
        ("Conv2D(2, k=3, d=2, same, sigmoid, no bias)", lambda: C2(2, 3, padding="same", dilation_rate=2, activation="sigmoid", use_bias=False), [((2, 6, 5, 1), "full")]),
        ("Conv2D(3, k=1, softmax)", lambda: C2(3, 1, activation="softmax"), [((2, 2, 3, 2), "full")]),
        ("Conv2D(8, k=3, same, gelu)", lambda: C2(8, 3, padding="same", activation="gelu"), [((4, 9, 9, 4), "random")]),
        ("Conv1D(3, k=3, s=2, same, tanh)", lambda: C1(3, 3, strides=2, padding="same", activation="tanh"), [((2, 7, 2), "full"), ((1, 6, 3), "full")]),
        ("Conv1D(2, k=2, valid)", lambda: C1(2, 2), [((1, 5, 3), "full")]),
        ("Conv1D(2, k=3, d=2, causal, softplus)", lambda: C1(2, 3, padding="causal", dilation_rate=2, activation="softplus"), [((2, 6, 2), "full")]),
        ("Conv1D(4, k=3, same, relu)", lambda: C1(4, 3, padding="same", activation="relu"), [((2, 7, 3), "full")]),
    ]
    for label, make, inputs in specs:
        yield LayerVariant(label, "", lambda units, make=make: make(), inputs, prepare=_conv_off_kinks, randomize=True)


def _pooling_variants(cls):
    if cls.rank == 2:
        specs = [
            ("pool=2", {}, [((2, 5, 5, 2), "full")]),
            ("pool=3x2, s=2x1, same", {"pool_size": (3, 2), "strides": (2, 1), "padding": "same"}, [((1, 5, 4, 3), "full")]),
            ("pool=3, s=1, same", {"pool_size": 3, "strides": 1, "padding": "same"}, [((2, 4, 4, 1), "full")]),
            ("pool=2, s=1", {"strides": 1}, [((8, 8, 8, 6), "random")]),
        ]
    else:
        specs = [
            ("pool=2", {}, [((2, 7, 3), "full")]),
            ("pool=3, s=2, same", {"pool_size": 3, "strides": 2, "padding": "same"}, [((1, 6, 2), "full"), ((2, 5, 2), "full")]),
        ]
    make_input = _distinct_input if cls.kind == "max" else None
    for label, kwargs, inputs in specs:
        yield LayerVariant(f"{cls.__name__}({label})", "", lambda units, kwargs=kwargs: cls(**kwargs), inputs, make_input=make_input)


def _global_pooling_variants(cls):
    inputs = [((2, 5, 3), "full"), ((1, 4, 2), "full")] if cls.rank == 1 else [((2, 3, 4, 2), "full"), ((1, 3, 3, 3), "full")]
    make_input = _distinct_input if cls.kind == "max" else None
    yield LayerVariant(cls.__name__, "", lambda units: cls(), inputs, make_input=make_input)
    yield LayerVariant(f"{cls.__name__}(keepdims)", "", lambda units: cls(keepdims=True), inputs[:1], make_input=make_input)


def _recurrent_variants(cls):
    gated = cls is not fd.layers.SimpleRNN
    specs = [
        ("3", {}, [((2, 4, 2), "full")]),
        ("3, return_sequences", {"return_sequences": True}, [((2, 3, 2), "full")]),
        ("2, return_sequences", {"return_sequences": True}, [((1, 5, 3), "full")]),
        ("2", {}, [((1, 3, 1), "full")]),
        ("3, no bias", {"use_bias": False}, [((2, 3, 2), "full")]),
        ("16, return_sequences", {"return_sequences": True}, [((8, 10, 12), "random")]),
    ]
    if gated:
        specs.append(("3, softplus/tanh", {"activation": "softplus", "recurrent_activation": "tanh", "return_sequences": True}, [((2, 3, 2), "full")]))
    else:
        specs.append(("3, sigmoid", {"activation": "sigmoid", "return_sequences": True}, [((2, 3, 2), "full")]))
    for label, kwargs, inputs in specs:
        units = int(label.split(",")[0])
        yield LayerVariant(
            f"{cls.__name__}({label})", "", lambda _, units=units, kwargs=kwargs: cls(units, **kwargs), inputs, randomize=True
        )


def _reseeded(layer):
    layer.random_stream = fd.random.CounterStream(DROPOUT_SEED)


#: The dropout cases reset the layer's counter-based stream before every forward pass: one fixed mask.
DROPOUT_SEED = 7


def _index_input(input_dim):
    def make(rng, shape):
        indices = rng.integers(0, input_dim, shape)
        indices.reshape(-1)[:2] = indices.reshape(-1)[-1]  # a repeated index: the scatter-add must accumulate
        return indices, "integer indices, one repeated (no input gradient)"

    return make


def _moving_statistics(layer, x, rng):
    layer.state["moving_mean"][...] = rng.normal(0.0, 1.0, layer.state["moving_mean"].shape)
    layer.state["moving_variance"][...] = rng.uniform(0.5, 2.0, layer.state["moving_variance"].shape)
    return "random moving statistics"


class _ShardOfTwo:
    """A stand-in strategy: this layer holds one shard of a batch, a second process the rows ``other``
    with a zero loss gradient. Its `allreduce_sum` adds the other rows' shifted sums in the forward
    pass (the layer's shift, as a real process would use it) and nothing in the backward pass, so the
    layer's synchronized forward and backward are those of a loss over this shard's outputs alone,
    normalized with the statistics of both shards: what finite differences of the case check."""

    size = 2

    def __init__(self, layer, other):
        self.layer, self.other = layer, other

    def allreduce_sum(self, values):
        C = self.layer.input_shape[-1]
        if values.shape[0] == 2 * C + 1:  # the forward sums (the backward's have 2 C entries: zero here)
            d = self.other.reshape(-1, C) - self.layer.state["moving_mean"]
            values[:C] += d.sum(axis=0)
            values[C : 2 * C] += (d * d).sum(axis=0)
            values[2 * C] += d.shape[0]
        return values


def _second_shard(layer, x, rng):
    other = rng.normal(0.5, 1.5, (3, *x.shape[1:]))
    layer.shard = fd.distributed.Shard(_ShardOfTwo(layer, other))
    return "synchronized with a second shard of 3 rows (zero loss gradient there)"


def _misc_variants():
    """Flatten, Reshape, Dropout, Embedding, BatchNormalization."""
    yield LayerVariant("Flatten", "flatten", lambda _: fd.layers.Flatten(), [((2, 3, 2, 2), "full"), ((1, 4, 3), "full")])
    yield LayerVariant("Reshape((3, -1))", "reshape", lambda _: fd.layers.Reshape((3, -1)), [((2, 6), "full")])
    yield LayerVariant("Reshape((6, 2))", "reshape", lambda _: fd.layers.Reshape((6, 2)), [((1, 2, 3, 2), "full")])
    for rate, inputs in ((0.5, [((3, 4, 5), "full")]), (0.2, [((1, 6), "full"), ((16, 40), "random")])):
        yield LayerVariant(
            f"Dropout({rate}, fixed mask)", "dropout", lambda _, rate=rate: fd.layers.Dropout(rate), inputs, before_forward=_reseeded
        )
    yield LayerVariant(
        "Embedding(6, 3)", "embedding", lambda _: fd.layers.Embedding(6, 3), [((3, 4), "full"), ((1, 5), "full")],
        make_input=_index_input(6), randomize=True, differentiate_input=False,
    )
    yield LayerVariant(
        "Embedding(50, 8)", "embedding", lambda _: fd.layers.Embedding(50, 8), [((16, 12), "random")],
        make_input=_index_input(50), randomize=True, differentiate_input=False,
    )
    BN = fd.layers.BatchNormalization
    yield LayerVariant("BatchNormalization", "batchnormalization", lambda _: BN(), [((4, 3), "full"), ((1, 3, 4), "full"), ((32, 16), "random")], randomize=True)
    yield LayerVariant("BatchNormalization(center=False)", "batchnormalization", lambda _: BN(center=False), [((3, 2, 2, 3), "full")], randomize=True)
    yield LayerVariant("BatchNormalization(scale=False, epsilon=0.1)", "batchnormalization", lambda _: BN(scale=False, epsilon=0.1), [((5, 2), "full")], randomize=True)
    yield LayerVariant(
        "BatchNormalization(synchronized: a shard of two)", "batchnormalization", lambda _: BN(), [((4, 3), "full"), ((2, 2, 3), "full")],
        randomize=True, prepare=_second_shard,
    )
    yield LayerVariant(
        "BatchNormalization(trainable=False: moving statistics)", "batchnormalization", lambda _: BN(trainable=False),
        [((4, 3), "full")], randomize=True, prepare=_moving_statistics,
    )


#: Variants of the layers whose inputs are not ``(n, n_in)`` matrices, by registry name.
LAYER_VARIANTS = {
    "conv1d": lambda: [v for v in _conv_variants() if v.label.startswith("Conv1D")],
    "conv2d": lambda: [v for v in _conv_variants() if v.label.startswith("Conv2D")],
    **{
        name: (lambda cls=cls: list(_pooling_variants(cls)))
        for name, cls in (
            ("maxpooling1d", fd.layers.MaxPooling1D),
            ("maxpooling2d", fd.layers.MaxPooling2D),
            ("averagepooling1d", fd.layers.AveragePooling1D),
            ("averagepooling2d", fd.layers.AveragePooling2D),
        )
    },
    **{
        name: (lambda cls=cls: list(_global_pooling_variants(cls)))
        for name, cls in (
            ("globalmaxpooling1d", fd.layers.GlobalMaxPooling1D),
            ("globalmaxpooling2d", fd.layers.GlobalMaxPooling2D),
            ("globalaveragepooling1d", fd.layers.GlobalAveragePooling1D),
            ("globalaveragepooling2d", fd.layers.GlobalAveragePooling2D),
        )
    },
    **{
        name: (lambda cls=cls: list(_recurrent_variants(cls)))
        for name, cls in (("simplernn", fd.layers.SimpleRNN), ("lstm", fd.layers.LSTM), ("gru", fd.layers.GRU))
    },
    **{
        name: (lambda name=name: [v for v in _misc_variants() if v.registered == name])
        for name in ("flatten", "reshape", "dropout", "embedding", "batchnormalization")
    },
    # Several inputs each: their cases are fastdnn.verify.graph_cases.merge_cases.
    **{name: (lambda: []) for name in ("add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot")},
}


# -- whole models: the fused output activation + loss paths -----------------------------------------


def model_cases(rng, device="cpu"):
    """Small float64 models whose loss gradient is checked end to end (see `model_case`), compiled for ``device``."""
    configs = [
        ("tanh|softmax + sparse CE (fused)", [("tanh", 5), ("softmax", 3)], "sparse_categorical_crossentropy"),
        ("gelu|softmax + CE (fused)", [("gelu", 5), ("softmax", 3)], "categorical_crossentropy"),
        ("silu|sigmoid + BCE (fused)", [("silu", 4), ("sigmoid", 2)], "binary_crossentropy"),
        ("relu|linear|Activation(softmax) + CE (fused)", [("relu", 4), ("linear", 3), "softmax"], "categorical_crossentropy"),
        ("elu|linear + CE from_logits", [("elu", 4), ("linear", 3)], {"name": "categorical_crossentropy", "from_logits": True}),
        ("softplus|tanh + MSE", [("softplus", 4), ("tanh", 2)], "mean_squared_error"),
    ]
    for label, spec, loss in configs:
        fd.config.set_floatx("float64")
        try:
            layers = [fd.layers.Input((3,))]
            for i, entry in enumerate(spec):
                name = f"layer{i}"
                if isinstance(entry, str):
                    layers.append(fd.layers.Activation(entry, name=name))
                else:
                    layers.append(fd.layers.Dense(entry[1], activation=entry[0], name=name))
            model = fd.Sequential(layers)
            model.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss=loss, device=device)
        finally:
            fd.config.set_floatx("float32")
        x = rng.normal(size=(4, 3))
        width = model.output_shape[-1]
        name = fd.losses.get(loss).name
        if name == "sparse_categorical_crossentropy":
            y = rng.integers(0, width, 4)
        elif name == "categorical_crossentropy":
            y = np.eye(width)[rng.integers(0, width, 4)]
        elif name == "binary_crossentropy":
            y = rng.integers(0, 2, (4, width)).astype(FLOAT64)
        else:
            y = rng.normal(size=(4, width))
        yield model_case(f"model:{label}", model, x, y), "full"


def layer_model_cases(rng, device="cpu"):
    """Small float64 models of every other layer family, checked end to end like `model_cases`
    (on the device this puts each family's CUDA forward and backward under finite differences)."""
    L = fd.layers
    configs = [
        ("Conv2D(relu, same, stride 2)|MaxPooling2D|Flatten|softmax + sparse CE", (5, 5, 2),
         lambda: [L.Conv2D(3, 3, strides=2, padding="same", activation="relu"), L.MaxPooling2D(2, padding="same"),
                  L.Flatten(), L.Dense(3, activation="softmax")], "sparse_categorical_crossentropy"),
        ("Conv1D(tanh, causal, dilation 2)|AveragePooling1D|GlobalMaxPooling1D|linear + MSE", (7, 2),
         lambda: [L.Conv1D(3, 2, padding="causal", dilation_rate=2, activation="tanh"), L.AveragePooling1D(2),
                  L.GlobalMaxPooling1D(), L.Dense(2)], "mean_squared_error"),
        ("Embedding|LSTM(sequences)|GRU|softmax + sparse CE", "tokens",
         lambda: [L.Embedding(6, 3), L.LSTM(3, return_sequences=True), L.GRU(2), L.Dense(3, activation="softmax")],
         "sparse_categorical_crossentropy"),
        ("SimpleRNN|BatchNormalization|Dense(sigmoid) + BCE (fused)", (3, 2),
         lambda: [L.SimpleRNN(4), L.BatchNormalization(), L.Dense(2, activation="sigmoid")], "binary_crossentropy"),
    ]
    for label, sample, layers, loss in configs:
        fd.config.set_floatx("float64")
        try:
            built = layers()
            for i, layer in enumerate(built):
                layer.name = f"layer{i}"  # the same names in every call, whatever the counters say
            model = fd.Sequential([L.Input((4,) if sample == "tokens" else sample), *built])
            model.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss=loss, device=device)
        finally:
            fd.config.set_floatx("float32")
        x = rng.integers(0, 6, (3, 4)) if sample == "tokens" else rng.normal(size=(3, *sample))
        width = model.output_shape[-1]
        if loss == "sparse_categorical_crossentropy":
            y = rng.integers(0, width, 3)
        elif loss == "binary_crossentropy":
            y = rng.integers(0, 2, (3, width)).astype(FLOAT64)
        else:
            y = rng.normal(size=(3, width))
        yield model_case(f"model:{label}", model, x, y), "random"


def model_case(op, model, x, y):
    """A case whose arguments are every parameter of a compiled float64 ``model`` and whose output is
    its mean loss on ``(x, y)``; the analytical side is the model's own training backward pass
    (through the CUDA kernels for a model compiled with ``device="cuda"``).
    """
    x, targets = model._data(x, y)
    targets = model._kernel_targets(targets)
    if model._device == "cuda":
        return _cuda_model_case(op, model, x, targets)
    arguments = {f"{layer.name}.{key}": value for layer in model.layers for key, value in layer.params.items()}
    views = {f"{layer.name}.{key}": layer.grads[key] for layer in model.layers for key in layer.params}

    def forward():
        return np.array(model._loss_and_gradients(x, targets)[0])

    def backward(dLdY):
        model._loss_and_gradients(x, targets)
        return {name: float(dLdY) * grad.copy() for name, grad in views.items()}

    return GradientCase(op=op, arguments=arguments, forward=forward, backward=backward)


def _cuda_model_case(op, model, x, targets):
    """`model_case` on the device: each evaluation uploads the (perturbed) host parameters."""
    from numba import cuda

    from fastdnn import backend

    engine = backend.engine_for(model)
    def on_device(arrays):  # one array, or a list of them (several inputs or outputs)
        return [cuda.to_device(a) for a in arrays] if isinstance(arrays, list) else cuda.to_device(arrays)

    device_x, device_t = on_device(x), on_device(targets)
    store = model._store
    arguments = {f"{layer.name}.{key}": value for layer in model.layers for key, value in layer.params.items()}
    spans = {f"{layer.name}.{key}": (int(a), int(b), layer.params[key].shape) for (layer, key), a, b in zip(store.variables, store.offsets[:-1], store.offsets[1:])}

    def run(with_grad):
        engine.push_params()
        return engine.loss_and_gradients(device_x, device_t, with_grad=with_grad)[0]

    def forward():
        return np.array(run(False))

    def backward(dLdY):
        run(True)
        grads = engine.grads.copy_to_host()
        return {name: float(dLdY) * grads[a:b].reshape(shape) for name, (a, b, shape) in spans.items()}

    return GradientCase(op=op, arguments=arguments, forward=forward, backward=backward)


def gradient_cases(seed=0):
    """Every gradient case, with its preferred mode: ``[(GradientCase, "full" | "random"), ...]``."""
    from fastdnn.verify import graph_cases

    rng = np.random.default_rng(seed)
    cases = []
    families = (activation_cases, loss_cases, layer_cases, model_cases, layer_model_cases)
    for family in (*families, graph_cases.merge_cases, graph_cases.graph_model_cases):
        cases.extend(family(rng))
    return cases


# -- optimizers -------------------------------------------------------------------------------------


@dataclass
class UpdateRuleCase:
    """One optimizer configuration, checked against ``fastdnn.verify.reference`` over many steps."""

    op: str
    registered_name: str
    rule: str  # the reference function
    hyper: dict
    kind: str = "update_rule"


#: Every option of every rule: (reference rule, hyperparameters).
RULE_OPTIONS = {
    "sgd": [("sgd", {}), ("sgd", {"learning_rate": 0.1, "weight_decay": 0.01, "clipvalue": 0.5})],
    "momentum": [("sgd", {"momentum": 0.9})],
    "nag": [("sgd", {"momentum": 0.9, "nesterov": True})],
    "nesterov": [("sgd", {"momentum": 0.5, "nesterov": True, "learning_rate": 0.05})],
    "adagrad": [("adagrad", {}), ("adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.0, "epsilon": 1e-4})],
    "rmsprop": [
        ("rmsprop", {}),
        ("rmsprop", {"momentum": 0.9}),
        ("rmsprop", {"centered": True}),
        ("rmsprop", {"centered": True, "momentum": 0.5, "rho": 0.8}),
        ("rmsprop", {"global_clipnorm": 0.5}),
    ],
    "adadelta": [("adadelta", {}), ("adadelta", {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6})],
    "adam": [
        ("adam", {}),
        ("adam", {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9}),
        ("adam", {"amsgrad": True}),
        ("adam", {"clipnorm": 0.1, "weight_decay": 0.004}),
    ],
}


def _optimizer_factory(name, hyper):
    """The registered constructor for ``name`` with ``hyper`` (name aliases map to SGD options)."""
    if name in ("momentum", "nag", "nesterov"):
        return fd.optimizers.SGD(**hyper)
    return fd.optimizers.registry.lookup(name)(**hyper)


def update_rule_cases():
    cases = []
    for name in fd.optimizers.registry.names(aliases=True):
        for rule, hyper in RULE_OPTIONS.get(name, []):
            label = ", ".join(f"{k}={v}" for k, v in hyper.items()) or "defaults"
            cases.append(UpdateRuleCase(f"optimizer:{name}({label})", name, rule, hyper))
    return cases


# -- coverage ---------------------------------------------------------------------------------------


def uncovered():
    """Registered names that have no case: ``{"activation": [...], "loss": [...], ...}`` (empty lists when complete)."""
    covered = {case.covers for case, _ in gradient_cases()}
    covered |= {f"layer:{name}" for name in EXEMPT_LAYERS}
    covered |= {f"optimizer:{case.registered_name}" for case in update_rule_cases()}
    registered = {
        "activation": fd.activations.registry.names(),
        "loss": fd.losses.registry.names(),
        "layer": fd.layers.registry.names(),
        "optimizer": fd.optimizers.registry.names(aliases=True),
    }
    return {kind: sorted(name for name in names if f"{kind}:{name}" not in covered) for kind, names in registered.items()}
