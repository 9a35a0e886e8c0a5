"""Every layer's argument space, and the configurations the verifier draws from it.

For each registered layer a `Space` declares the range of every constructor argument (kernel sizes,
strides and dilation per axis, paddings, every activation, ``use_bias``, ``return_sequences``, ...) and
an independent forward pass built on `fastdnn.verify.reference` that takes its geometry from the
configuration alone, never from the layer object. `grid()` draws a covering set of configurations
(every pair of values of any two arguments appears in at least one, as far as the constraints allow);
the tests draw more with Hypothesis under ``HYPOTHESIS_PROFILE=long`` (`configuration`).

Each configuration becomes one `ConfigCase` with three kinds of checks:

- ``forward``: the layer's float64 output against the reference, within 1e-10 relative + 1e-12 absolute;
- ``float32``: the layer built in float32 (same parameters, rounded) against the float64 reference,
  within `FLOAT32_RTOL` relative + `FLOAT32_ATOL` absolute;
- the backward pass by central finite differences in float64 (`fastdnn.verify.gradcheck`).

A constructor argument that is neither ranged nor listed in `NOT_RANGED` (with the reason) is reported
by `unranged()`, and the test suite fails on it, as it does for a registered layer without a space.
"""

import inspect
import itertools
from dataclasses import dataclass, field

import numpy as np

import fastdnn as fd
from fastdnn.verify import reference
from fastdnn.verify.gradcheck import RTOL, GradientCase, check, compare

FLOAT64 = np.float64
#: Tolerance of the float64 forward pass against the reference (both compute the same sums, in other orders).
FORWARD_RTOL, FORWARD_ATOL = 1e-10, 1e-12
#: Tolerance of the float32 forward pass against the float64 reference: float32 rounding of the inputs,
#: parameters and sums of up to a few dozen terms, and the 3e-7 rational tanh/sigmoid of the recurrent cells.
FLOAT32_RTOL, FLOAT32_ATOL = 1e-4, 2e-5

#: Constructor arguments no space ranges, with the reason (they change no arithmetic of the layer).
NOT_RANGED = {
    "name": "a label",
    "input_shape": "declares the model's input; the cases give every layer its input directly",
    "trainable": "freezes parameters inside a model (tests/test_model.py); the layer's arithmetic is unchanged",
    "kernel_initializer": "the verifier draws every parameter itself; initializers are checked in tests/test_initializers.py",
    "recurrent_initializer": "as kernel_initializer",
    "bias_initializer": "as kernel_initializer",
    "embeddings_initializer": "as kernel_initializer",
    "beta_initializer": "as kernel_initializer",
    "gamma_initializer": "as kernel_initializer",
    "moving_mean_initializer": "the cases draw the moving statistics themselves",
    "moving_variance_initializer": "the cases draw the moving statistics themselves",
    "unit_forget_bias": "adds 1 to the initial forget-gate bias only; the cases draw every parameter",
    "shape": "InputLayer declares a shape and computes nothing",
}

#: Activations a recurrent cell takes (their derivative follows from their output); the others are refused.
RECURRENT_ACTIVATIONS = ["tanh", "sigmoid", "relu", "leaky_relu", "linear", "softplus"]


def activation_names():
    return list(fd.activations.registry.names())


def _tuple(value, rank):
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _act(name):
    return "linear" if name is None else name


# -- the reference forward passes: configuration -> output, geometry from the arguments ---------------


def _conv_reference(rank):
    def forward(config, x, params, dtype):
        kernel = _tuple(config["kernel_size"], rank)
        strides = _tuple(config["strides"], rank)
        dilation = _tuple(config["dilation_rate"], rank)
        K, b = params["W"], params.get("b")
        if rank == 1:  # a 1-D convolution is a 2-D one over a height of 1
            x, K, kernel, strides, dilation = x[:, None], K[None], (1, *kernel), (1, *strides), (1, *dilation)
        y = reference.conv_forward(x, K, b, strides, config["padding"], dilation, _act(config["activation"]))[1]
        return y[:, 0] if rank == 1 else y

    return forward


def _pool_reference(rank, kind):
    def forward(config, x, params, dtype):
        pool = _tuple(config["pool_size"], rank)
        strides = pool if config["strides"] is None else _tuple(config["strides"], rank)
        if rank == 1:
            x, pool, strides = x[:, None], (1, *pool), (1, *strides)
        y = (reference.max_pool if kind == "max" else reference.avg_pool)(x, pool, strides, config["padding"])
        return y[:, 0] if rank == 1 else y

    return forward


def _global_pool_reference(kind):
    def forward(config, x, params, dtype):
        y = reference.global_pool(kind, x)
        return y.reshape(y.shape[0], *([1] * (x.ndim - 2)), y.shape[-1]) if config["keepdims"] else y

    return forward


def _dense_reference(config, x, params, dtype):
    return reference.dense_forward(x, params["W"], params.get("b"), _act(config["activation"]))[1]


def _activation_reference(config, x, params, dtype):
    return reference.activation(config["activation"], x)


def _recurrent_reference(kind):
    def forward(config, x, params, dtype):
        W, U, b = params["W"], params["U"], params.get("b")
        if kind == "simplernn":
            return reference.simple_rnn(x, W, U, b, config["activation"], config["return_sequences"])
        function = reference.lstm if kind == "lstm" else reference.gru
        return function(x, W, U, b, config["activation"], config["recurrent_activation"], config["return_sequences"])[0]

    return forward


def _batch_norm_reference(config, x, params, dtype, state):
    """The output, and the moving statistics expected after the forward pass (training mode)."""
    frozen = not config["trainable"]
    y, mu, var = reference.batch_norm(
        x, params.get("gamma"), params.get("beta"), config["epsilon"],
        state["moving_mean"] if frozen else None, state["moving_variance"] if frozen else None,
    )
    if frozen:
        return y, dict(state)
    m = config["momentum"]
    return y, {"moving_mean": m * state["moving_mean"] + (1 - m) * mu, "moving_variance": m * state["moving_variance"] + (1 - m) * var}


def _dropout_reference(config, x, params, dtype):
    return reference.dropout(x, _dropout_uniform(config, x.shape, dtype), config["rate"])[0]


def _embedding_reference(config, x, params, dtype):
    return reference.embedding(x, params["embeddings"])


def _flatten_reference(config, x, params, dtype):
    return np.asarray(x, dtype=FLOAT64).reshape(x.shape[0], int(np.prod(x.shape[1:])))


def _reshape_reference(config, x, params, dtype):
    target = list(config["target_shape"])
    size = int(np.prod(x.shape[1:]))
    if -1 in target:
        target[target.index(-1)] = size // -int(np.prod(target))
    return np.asarray(x, dtype=FLOAT64).reshape(x.shape[0], *target)


def _merge_reference(kind):
    def forward(config, xs, params, dtype):
        return reference.merge(kind, xs)

    return forward


def _concatenate_reference(config, xs, params, dtype):
    return reference.concatenate(xs, config["axis"])


def _dot_reference(config, xs, params, dtype):
    axes = config["axes"] if isinstance(config["axes"], tuple) else (config["axes"],) * 2
    return reference.dot(xs[0], xs[1], axes, config["normalize"])


#: Seed of every dropout mask: the layer's stream is reset to step 0 before each forward pass, with
#: its own seed as key, or (seed None) a key drawn from the library's generator seeded here; the
#: reference recomputes the counter-based numbers of step 0 (`reference.counter_uniform`).
DROPOUT_SEED = 11


def _dropout_reseed(layer, config):
    fd.set_seed(DROPOUT_SEED)
    layer.random_stream = fd.random.CounterStream(config["seed"])


def _dropout_uniform(config, shape, dtype):
    fd.set_seed(DROPOUT_SEED)
    key = fd.random.CounterStream(config["seed"]).ensure_key()
    return reference.counter_uniform(key, 0, 0, int(np.prod(shape))).reshape(shape)


# -- inputs -------------------------------------------------------------------------------------------


def _conv_input(rank):
    def make(config, rng):
        kernel, dilation = _tuple(config["kernel_size"], rank), _tuple(config["dilation_rate"], rank)
        spatial = [(k - 1) * d + 1 + int(rng.integers(0, 3)) for k, d in zip(kernel, dilation)]
        return rng.normal(size=(int(rng.integers(1, 3)), *spatial, int(rng.integers(1, 4))))

    return make


def _pool_input(rank, kind):
    def make(config, rng):
        pool = _tuple(config["pool_size"], rank)
        shape = (int(rng.integers(1, 3)), *(p + int(rng.integers(0, 3)) for p in pool), int(rng.integers(1, 3)))
        return _distinct(rng, shape) if kind == "max" else rng.normal(size=shape)

    return make


def _global_input(rank, kind):
    def make(config, rng):
        shape = (int(rng.integers(1, 3)), *(int(rng.integers(1, 4)) for _ in range(rank)), int(rng.integers(1, 4)))
        return _distinct(rng, shape) if kind == "max" else rng.normal(size=shape)

    return make


#: Spacing of max-pooling inputs: far above the finite-difference step, so no perturbation reorders a window.
TIE_SPACING = 0.05


def _distinct(rng, shape):
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2.0) * TIE_SPACING).reshape(shape)


def _matrix_input(config, rng):
    return rng.normal(size=(int(rng.integers(1, 4)), int(rng.integers(1, 5))))


def _sequence_input(config, rng):
    return rng.normal(size=(int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 3))))


def _any_input(config, rng):
    rank = int(rng.integers(1, 4))
    return rng.normal(size=(int(rng.integers(1, 4)), *(int(rng.integers(1, 4)) for _ in range(rank))))


def _twelve_input(config, rng):
    return rng.normal(size=(int(rng.integers(1, 3)), *[(12,), (3, 4), (2, 2, 3)][int(rng.integers(0, 3))]))


def _index_input(config, rng):
    indices = rng.integers(0, config["input_dim"], (int(rng.integers(1, 4)), int(rng.integers(2, 5))))
    indices.reshape(-1)[0] = indices.reshape(-1)[-1]  # a repeated index: the scatter-add must accumulate
    return indices


def _merge_input(kind):
    """``config["inputs"]`` arrays of sample shape ``config["sample_shape"]``; for maximum and minimum
    all values distinct and spaced (no tie, and no perturbation changes which input holds the extreme)."""
    def make(config, rng):
        shape = (int(rng.integers(1, 3)), *config["sample_shape"])
        if kind in ("maximum", "minimum"):
            return list(_distinct(rng, (config["inputs"], *shape)))
        return [rng.normal(size=shape) for _ in range(config["inputs"])]

    return make


def _concatenate_input(config, rng):
    """``config["inputs"]`` arrays of rank ``config["rank"]`` (batch included) equal on every axis but
    ``config["axis"]``, where their lengths differ."""
    rank = config["rank"]
    axis = config["axis"] if config["axis"] > 0 else rank + config["axis"]
    base = [int(rng.integers(1, 3))] + [int(rng.integers(1, 4)) for _ in range(rank - 1)]
    return [rng.normal(size=[i + 1 if a == axis else d for a, d in enumerate(base)]) for i in range(config["inputs"])]


def _dot_input(config, rng):
    """Two inputs of rank ``config["rank"]`` (batch included) whose contracted axes have equal lengths."""
    rank = config["rank"]
    axes = config["axes"] if isinstance(config["axes"], tuple) else (config["axes"],) * 2
    n, contracted = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    shapes = []
    for axis in axes:
        axis = axis if axis > 0 else rank + axis
        shapes.append([n] + [contracted if a == axis else int(rng.integers(1, 4)) for a in range(1, rank)])
    return [rng.normal(size=shape) for shape in shapes]


# -- the spaces -----------------------------------------------------------------------------------------


@dataclass
class Space:
    """The argument space of one registered layer.

    Parameters
    ----------
    ranges : dict of argument -> list of values
        Every value each ranged constructor argument takes in the cases.
    reference : callable (config, x, params, dtype) -> y
        The independent forward pass (``(y, expected state)`` when ``stateful``).
    make_input : callable (config, rng) -> x
    constraint : callable (config) -> bool
        Combinations the layer refuses (as Keras does); they are left out of the grid.
    refused : dict of argument -> list of values
        Values the layer must refuse with a ValueError naming the argument (checked by the tests).
    fixed : dict
        Required arguments given the same value in every case (none so far).
    differentiate_input : bool
        False for integer inputs.
    stateful : bool
        The layer has state (moving statistics) the reference predicts too.
    inputs : dict of name -> list of values
        Ranges of what the layer's inputs look like (a merge layer's count of inputs, their rank), drawn
        into the configurations like the arguments but not passed to the constructor.
    before_forward : callable (layer, config), optional
        Re-seeds a dropout mask before each forward pass.
    rtol : float
        Relative tolerance of the finite-difference check.
    """

    ranges: dict
    reference: object
    make_input: object
    constraint: object = None
    refused: dict = field(default_factory=dict)
    differentiate_input: bool = True
    stateful: bool = False
    inputs: dict = field(default_factory=dict)
    before_forward: object = None
    rtol: float = RTOL


def _conv_space(rank):
    if rank == 2:
        geometry = {
            "kernel_size": [1, 2, 3, (3, 1), (1, 2), (2, 3)],
            "strides": [1, 2, (2, 1), (1, 3)],
            "padding": ["valid", "same"],
            "dilation_rate": [1, 2, (2, 1), (1, 3)],
        }
    else:
        geometry = {"kernel_size": [1, 2, 3], "strides": [1, 2, 3], "padding": ["valid", "same", "causal"], "dilation_rate": [1, 2, 3]}
    return Space(
        ranges={
            "filters": [1, 2, 3], **geometry, "data_format": [None, "channels_last"],
            "activation": [None, *activation_names()], "use_bias": [True, False],
        },
        reference=_conv_reference(rank),
        make_input=_conv_input(rank),
        constraint=lambda c: max(_tuple(c["strides"], rank)) == 1 or max(_tuple(c["dilation_rate"], rank)) == 1,
        refused={"data_format": ["channels_first"], "padding": ["full"]},
    )


def _pool_space(rank, kind):
    if rank == 2:
        geometry = {"pool_size": [1, 2, 3, (2, 3), (3, 1)], "strides": [None, 1, 2, (1, 2), (3, 2)]}
    else:
        geometry = {"pool_size": [1, 2, 3], "strides": [None, 1, 2, 3]}
    return Space(
        ranges={**geometry, "padding": ["valid", "same"], "data_format": [None, "channels_last"]},
        reference=_pool_reference(rank, kind),
        make_input=_pool_input(rank, kind),
        refused={"data_format": ["channels_first"]},
    )


def _global_space(rank, kind):
    return Space(
        ranges={"keepdims": [False, True], "data_format": [None, "channels_last"]},
        reference=_global_pool_reference(kind),
        make_input=_global_input(rank, kind),
        refused={"data_format": ["channels_first"]},
    )


def _recurrent_space(kind):
    ranges = {
        "units": [1, 2, 3], "activation": RECURRENT_ACTIVATIONS, "use_bias": [True, False],
        "return_sequences": [False, True],
    }
    refused = {"activation": [a for a in activation_names() if a not in RECURRENT_ACTIVATIONS]}
    if kind != "simplernn":
        ranges["recurrent_activation"] = RECURRENT_ACTIVATIONS
        refused["recurrent_activation"] = refused["activation"]
    if kind == "gru":
        ranges["reset_after"] = [True]
        refused["reset_after"] = [False]
    # Unbounded gates (linear, relu) make a gated cell a polynomial of high degree in U: third derivatives
    # near 100 give central differences a truncation error near 1e-6 relative (it shrinks as h^2).
    rtol = RTOL if kind == "simplernn" else 1e-5
    return Space(ranges=ranges, reference=_recurrent_reference(kind), make_input=_sequence_input, refused=refused, rtol=rtol)


def spaces():
    """``{registry name: Space}`` for every registered layer that computes something."""
    return {
        "dense": Space(
            {"units": [1, 2, 4], "activation": [None, *activation_names()], "use_bias": [True, False]},
            _dense_reference, _matrix_input,
        ),
        "activation": Space({"activation": activation_names()}, _activation_reference, _any_input),
        "conv1d": _conv_space(1),
        "conv2d": _conv_space(2),
        "maxpooling1d": _pool_space(1, "max"),
        "maxpooling2d": _pool_space(2, "max"),
        "averagepooling1d": _pool_space(1, "average"),
        "averagepooling2d": _pool_space(2, "average"),
        "globalmaxpooling1d": _global_space(1, "max"),
        "globalmaxpooling2d": _global_space(2, "max"),
        "globalaveragepooling1d": _global_space(1, "average"),
        "globalaveragepooling2d": _global_space(2, "average"),
        "simplernn": _recurrent_space("simplernn"),
        "lstm": _recurrent_space("lstm"),
        "gru": _recurrent_space("gru"),
        "batchnormalization": Space(
            {
                "axis": [-1], "momentum": [0.99, 0.5, 0.0], "epsilon": [1e-3, 0.1], "center": [True, False],
                "scale": [True, False], "trainable": [True, False],
                # one process: every setting normalizes with the batch's statistics (the same reference)
                "synchronized": [None, True, False],
            },
            _batch_norm_reference, _any_input, stateful=True, refused={"axis": [1]},
        ),
        "dropout": Space(
            {"rate": [0.0, 0.25, 0.5, 0.9], "seed": [None, 5]}, _dropout_reference, _any_input,
            before_forward=_dropout_reseed,
        ),
        "embedding": Space(
            {"input_dim": [1, 4, 7], "output_dim": [1, 3]}, _embedding_reference, _index_input, differentiate_input=False
        ),
        "flatten": Space({"data_format": [None, "channels_last"]}, _flatten_reference, _any_input, refused={"data_format": ["channels_first"]}),
        "reshape": Space(
            {"target_shape": [(12,), (3, 4), (2, -1), (-1, 2, 3), (4, 3, 1)]}, _reshape_reference, _twelve_input
        ),
        **{kind: _merge_space(kind) for kind in MERGES},
        "concatenate": Space(
            {"axis": [-1, 1, 2, -2]}, _concatenate_reference, _concatenate_input,
            constraint=lambda c: abs(c["axis"]) < c["rank"],
            refused={"axis": [0]}, inputs={"inputs": [1, 2, 3], "rank": [2, 3, 4]},
        ),
        "dot": Space(
            {"axes": [1, -1, 2, (1, 2), (2, 1)], "normalize": [False, True]}, _dot_reference, _dot_input,
            constraint=lambda c: c["rank"] == 3 or c["axes"] in (1, -1), refused={"axes": [0, (0, 1)]},
            inputs={"rank": [2, 3]},
        ),
    }


#: The elementwise merge layers (no constructor argument of their own beyond name and trainable).
MERGES = ("add", "subtract", "multiply", "average", "maximum", "minimum")


def _merge_space(kind):
    counts = [2] if kind == "subtract" else [1, 2, 3]
    return Space({}, _merge_reference(kind), _merge_input(kind), inputs={"inputs": counts, "sample_shape": [(3,), (2, 3), (2, 1, 2)]})


def all_ranges(space):
    """The constructor arguments' ranges and the inputs' ranges: what a configuration assigns."""
    return {**space.ranges, **space.inputs}


def constructor_arguments_of(space, config):
    """The part of ``config`` that is passed to the layer's constructor."""
    return {k: v for k, v in config.items() if k in space.ranges}


#: Registered layers without a space, with the reason.
NO_SPACE = {"inputlayer": "declares the input shape of a model; computes nothing"}


def constructor_arguments(cls):
    """Every keyword a layer class accepts, following ``**kwargs`` up its base classes."""
    names = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names += [p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names


def unranged(layer_spaces=None, registry=None):
    """``{registry name: [arguments]}``: the constructor arguments of each registered layer that its
    space neither ranges nor `NOT_RANGED` excuses; registered layers without a space list ``["(no space)"]``."""
    layer_spaces = spaces() if layer_spaces is None else layer_spaces
    missing = {}
    for name, cls in (registry or fd.layers.registry).canonical_items():
        if name in NO_SPACE:
            continue
        space = layer_spaces.get(name)
        if space is None:
            missing[name] = ["(no space)"]
            continue
        left = [a for a in constructor_arguments(cls) if a not in space.ranges and a not in NOT_RANGED]
        if left:
            missing[name] = left
    return missing


# -- drawing configurations -----------------------------------------------------------------------------


def _allowed(space, config):
    return space.constraint is None or space.constraint(config)


def grid(space, seed=0, candidates=30):
    """A covering set of configurations: every value of every argument, and every pair of values of any
    two arguments that the constraint allows, in at least one configuration (greedy, as AETG does:
    each new configuration is the best of ``candidates`` random completions of an uncovered pair)."""
    rng = np.random.default_rng(seed)
    ranges = all_ranges(space)
    names = list(ranges)
    if len(names) == 1:
        return [{names[0]: value} for value in ranges[names[0]] if _allowed(space, {names[0]: value})]
    indices = {n: range(len(ranges[n])) for n in names}

    def config_of(choice):
        return {n: ranges[n][choice[n]] for n in names}

    uncovered = set()
    for a, b in itertools.combinations(names, 2):
        for i in indices[a]:
            for j in indices[b]:
                uncovered.add((a, i, b, j))

    def pairs(choice):
        return {(a, choice[a], b, choice[b]) for a, b in itertools.combinations(names, 2)}

    configs = []
    while uncovered:
        a, i, b, j = min(uncovered)
        best, best_gain = None, 0
        for _ in range(candidates):
            choice = {n: int(rng.integers(len(ranges[n]))) for n in names}
            choice[a], choice[b] = i, j
            if not _allowed(space, config_of(choice)):
                continue
            gain = len(pairs(choice) & uncovered)
            if gain > best_gain:
                best, best_gain = choice, gain
        if best is None:  # this pair is never allowed (or rarely): drop it
            uncovered.discard((a, i, b, j))
            continue
        uncovered -= pairs(best)
        configs.append(config_of(best))
    return configs


def configuration(space, draw):
    """A configuration drawn by Hypothesis (``draw`` from ``st.data()``), within the space's constraint."""
    from hypothesis import assume
    from hypothesis import strategies as st

    config = {n: draw(st.sampled_from(values)) for n, values in all_ranges(space).items()}
    assume(_allowed(space, config))
    return config


# -- one configuration, checked ---------------------------------------------------------------------------


def _label(config):
    def show(v):
        return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)

    return ", ".join(f"{k}={show(v)}" for k, v in config.items())


def build_layer(cls, space, config, x, dtype):
    """The layer of ``config`` built for input ``x`` (a list of arrays for a merge layer)."""
    layer = cls(**constructor_arguments_of(space, config))
    shape = [tuple(a.shape[1:]) for a in x] if isinstance(x, list) else tuple(x.shape[1:])
    layer.build(shape, dtype=dtype)
    return layer


def _named_inputs(x):
    """``{"x": x}``, or ``{"x0": x[0], "x1": x[1], ...}`` for the inputs of a merge layer."""
    return {f"x{i}": a for i, a in enumerate(x)} if isinstance(x, list) else {"x": x}


def _as_input(x, named):
    """``named`` (see `_named_inputs`) back in the form of ``x``."""
    return [named[f"x{i}"] for i in range(len(x))] if isinstance(x, list) else named["x"]


@dataclass
class ConfigCase:
    """One configuration of one layer: forward against the reference (float64 and float32) and backward
    by finite differences."""

    op: str
    covers: str
    registered: str
    config: dict
    space: Space
    seed: int
    kind: str = "layer_config"

    def setup(self):
        """``(layer class, input, float64 layer)``: the input drawn and every parameter drawn from N(0, 0.5^2)."""
        cls = fd.layers.registry.lookup(self.registered)
        rng = np.random.default_rng(self.seed)
        x = self.space.make_input(self.config, rng)
        layer = build_layer(cls, self.space, self.config, x, FLOAT64)
        for value in layer.params.values():  # no zero bias or unit scale may hide a term
            value[...] = rng.normal(0.0, 0.5, value.shape)
        if self.space.stateful:
            layer.state["moving_mean"][...] = rng.normal(0.0, 1.0, layer.state["moving_mean"].shape)
            layer.state["moving_variance"][...] = rng.uniform(0.5, 2.0, layer.state["moving_variance"].shape)
        return cls, x, layer

    def _forward(self, layer, x):
        if self.space.before_forward is not None:
            self.space.before_forward(layer, self.config)
        return np.array(layer.forward(x, training=True))

    def _reference(self, x, params, dtype, state=None):
        if self.space.stateful:
            return self.space.reference(self.config, x, params, dtype, state)
        return self.space.reference(self.config, x, params, dtype), None

    def forward_results(self):
        """The float64 and float32 forward checks (and the moving statistics, for a stateful layer)."""
        cls, x, layer = self.setup()
        params = {k: v.copy() for k, v in layer.params.items()}
        state = {k: v.copy() for k, v in getattr(layer, "state", {}).items()}
        results = []
        checks = ((FLOAT64, FORWARD_RTOL, FORWARD_ATOL, "reference"), (np.float32, FLOAT32_RTOL, FLOAT32_ATOL, "float32"))
        for dtype, rtol, atol, mode in checks:
            target = layer if dtype is FLOAT64 else build_layer(cls, self.space, self.config, x, dtype)

            def rounded(arrays):  # what the layer of this dtype holds, in float64 for the reference
                return {k: v.astype(dtype).astype(FLOAT64) for k, v in arrays.items()}

            for store, values in ((target.params, params), (getattr(target, "state", {}), state)):
                for k, v in values.items():
                    store[k][...] = v
            named = _named_inputs(x)
            integer = any(a.dtype.kind in "iu" for a in named.values())
            xin = x if integer else _as_input(x, {k: a.astype(dtype) for k, a in named.items()})
            x_reference = xin if integer else _as_input(x, rounded(_named_inputs(xin)))
            expected, expected_state = self._reference(x_reference, rounded(params), dtype, rounded(state))
            results.append(compare(self.op, "y", expected, self._forward(target, xin), rtol, atol, mode, sides=("reference", "layer")))
            for k, v in (expected_state or {}).items():
                results.append(compare(self.op, k, v, target.state[k], rtol, atol, mode, sides=("reference", "layer")))
        return results

    def gradient_case(self):
        """The backward pass as a `GradientCase` on the float64 layer."""
        _, x, layer = self.setup()
        if not self.space.differentiate_input:
            layer.compute_input_grad = False
        arguments = {**_named_inputs(x), **layer.params} if self.space.differentiate_input else dict(layer.params)

        def forward():
            return self._forward(layer, x)

        def backward(dLdY):
            dX = layer.backward(np.ascontiguousarray(dLdY, dtype=FLOAT64))
            grads = dict(layer.grads)
            return {**_named_inputs(dX), **grads} if self.space.differentiate_input else grads

        return GradientCase(op=self.op, arguments=arguments, forward=forward, backward=backward, covers=self.covers, rtol=self.space.rtol)

    def run(self, mode="full", rng=None):
        results = self.forward_results()
        case = self.gradient_case()
        if case.arguments:
            results += check(case, mode, rng)
        return results


def config_cases(seed=0, only_layer=None):
    """A `ConfigCase` for every configuration of the covering grid of every layer's space."""
    cases = []
    for name, space in spaces().items():
        if only_layer is not None and name != only_layer:
            continue
        cls = fd.layers.registry.lookup(name)
        for k, config in enumerate(grid(space, seed)):
            cases.append(ConfigCase(f"layer:{cls.__name__}[{_label(config)}]", f"layer:{name}", name, config, space, seed * 100003 + k))
    return cases

