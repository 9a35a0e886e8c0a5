"""Check cases for everything fastdnn registers: activations, losses, layers and optimizers.

`gradient_cases()` walks the registries and yields a `GradientCase` (verify/gradcheck.py) for every
activation, loss and layer, on shapes that include a batch of 1 and non-square matrices, plus whole
small models through the fused softmax/sigmoid + crossentropy paths. `update_rule_cases()` yields an
`UpdateRuleCase` for every registered optimizer name and every option. `uncovered()` lists what is
registered but has no case: the test suite fails on it, so nothing lands unchecked.
"""

from dataclasses import dataclass

import numpy as np

import fastdnn as fd
from verify.gradcheck import GradientCase

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


def loss_cases(rng):
    for name, cls in fd.losses.registry.canonical_items():
        logits_options = [False, True] if cls.logits_kernel is not None else [False]
        for from_logits in logits_options:
            loss = cls(from_logits=from_logits) if cls.logits_kernel is not None else cls()
            for shape, mode in LOSS_SHAPES:
                t, p, note = _loss_inputs(name, from_logits, shape, rng)
                suffix = " from_logits" if from_logits else ""
                yield _loss_case(f"loss:{name}{suffix} {_shape_label(shape)}", loss, t, p, note), mode


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


def _layer_variants():
    """(label, registered name, factory(units)) for every registered layer, covering its options."""
    for name, cls in fd.layers.registry.canonical_items():
        if name in EXEMPT_LAYERS:
            continue
        if cls is fd.layers.Dense:
            for activation in fd.activations.registry.names():
                yield f"Dense({activation})", name, lambda units, a=activation: fd.layers.Dense(units, activation=a)
            yield "Dense(tanh, no bias)", name, lambda units: fd.layers.Dense(units, activation="tanh", use_bias=False)
            slope = fd.activations.get("leaky_relu", negative_slope=0.1)
            yield "Dense(leaky_relu 0.1)", name, lambda units: fd.layers.Dense(units, activation=slope)
        elif cls is fd.layers.Activation:
            for activation in fd.activations.registry.names():
                yield f"Activation({activation})", name, lambda units, a=activation: fd.layers.Activation(a)
        else:
            yield cls.__name__, name, lambda units, cls=cls: cls()


def layer_cases(rng):
    for label, registered, factory in _layer_variants():
        for (n, n_in, n_out), mode in LAYER_SHAPES:
            layer = factory(n_out)
            if not isinstance(layer, fd.layers.Dense):
                n_in = n_out  # shape-preserving layers
            layer.build((n_in,), dtype=FLOAT64)
            x = rng.normal(size=(n, n_in))
            activation = getattr(layer, "activation", None)
            note = _keep_preactivation_off_kinks(layer, x) if activation is not None and activation.name in KINKS else ""
            case = _layer_case(f"layer:{label} {n}x{n_in}->{layer.output_shape[-1]}", layer, x, note)
            case.covers = f"layer:{registered}"
            yield case, mode


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


def _layer_case(op, layer, x, note):
    arguments = {"x": x, **layer.params}

    def forward():
        return layer.forward(x, training=True)

    def backward(dLdY):
        dX = layer.backward(np.ascontiguousarray(dLdY, dtype=FLOAT64))
        return {"x": dX, **{key: grad for key, grad in layer.grads.items()}}

    return GradientCase(op=op, arguments=arguments, forward=forward, backward=backward, note=note)


# -- whole models: the fused output activation + loss paths -----------------------------------------


def model_cases(rng):
    """Small float64 models whose loss gradient is checked end to end (see `model_case`)."""
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
            model.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss=loss)
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


def model_case(op, model, x, y):
    """A case whose arguments are every parameter of a compiled float64 ``model`` and whose output is
    its mean loss on ``(x, y)``; the analytical side is the model's own training backward pass.
    """
    x, targets = model._data(x, y)
    targets = model._kernel_targets(targets)
    arguments = {f"{layer.name}.{key}": value for layer in model.layers for key, value in layer.params.items()}
    views = {f"{layer.name}.{key}": layer.grads[key] for layer in model.layers for key in layer.params}

    def forward():
        return np.array(model._loss_and_gradients(x, targets)[0])

    def backward(dLdY):
        model._loss_and_gradients(x, targets)
        return {name: float(dLdY) * grad.copy() for name, grad in views.items()}

    return GradientCase(op=op, arguments=arguments, forward=forward, backward=backward)


def gradient_cases(seed=0):
    """Every gradient case, with its preferred mode: ``[(GradientCase, "full" | "random"), ...]``."""
    rng = np.random.default_rng(seed)
    cases = []
    for family in (activation_cases, loss_cases, layer_cases, model_cases):
        cases.extend(family(rng))
    return cases


# -- optimizers -------------------------------------------------------------------------------------


@dataclass
class UpdateRuleCase:
    """One optimizer configuration, checked against ``verify.reference`` over many steps."""

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
