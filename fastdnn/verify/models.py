"""`check_model`: the gradient of a compiled model's loss with respect to every parameter, end to end."""

import numpy as np

import fastdnn as fd
from fastdnn.verify.cases import model_case
from fastdnn.verify.gradcheck import check

#: Samples used from ``x``: enough to mix the rows, few enough to keep finite differences cheap.
MAX_SAMPLES = 8
#: Above this many parameters, random-direction mode replaces the full Jacobian.
FULL_MODE_LIMIT = 2000


class ModelCheck:
    """Results of `check_model`: one row per parameter array, grouped by layer in ``per_layer()``."""

    def __init__(self, results):
        self.results = results

    @property
    def passed(self):
        return all(r.passed for r in self.results)

    def per_layer(self):
        """``{layer name: {"passed": bool, "max_rel_error": float, "arguments": [...]}}``."""
        layers = {}
        for result in self.results:
            layer = result.argument.rsplit(".", 1)[0]
            entry = layers.setdefault(layer, {"passed": True, "max_rel_error": 0.0, "arguments": []})
            entry["passed"] &= result.passed
            entry["max_rel_error"] = max(entry["max_rel_error"], result.max_rel_error)
            entry["arguments"].append(result.argument)
        return layers

    def __str__(self):
        lines = [f"{'layer':24s} {'max rel error':>14s}  status"]
        for layer, entry in self.per_layer().items():
            lines.append(f"{layer:24s} {entry['max_rel_error']:14.2e}  {'ok' if entry['passed'] else 'FAILED'}")
        lines += [r.failure_report() for r in self.results if not r.passed]
        return "\n".join(lines)


def random_batch(model, n=MAX_SAMPLES, seed=0):
    """Inputs and valid targets shaped for a built, compiled ``model``: what ``fastdnn-gradcheck
    model.fdnn`` checks a saved model on.
    """
    rng = np.random.default_rng(seed)
    first = model.layers[0]
    if hasattr(first, "input_dim"):  # integer indices (Embedding)
        x = rng.integers(0, first.input_dim, (n, *model._input_shape))
    else:
        x = rng.normal(size=(n, *model._input_shape))
    width = model.output_shape[-1]
    rows = (n, *model.output_shape[:-1])
    name = model.loss.name
    if name == "sparse_categorical_crossentropy":
        y = rng.integers(0, width, rows)
    elif name == "categorical_crossentropy":
        y = np.eye(width)[rng.integers(0, width, rows)]
    elif name == "binary_crossentropy":
        y = rng.integers(0, 2, (*rows, width)).astype(np.float64)
    else:
        y = rng.normal(size=(*rows, width))
    return x, y


def check_model(model, x, y, mode=None, seed=0):
    """Check ``d loss / d parameter`` of a compiled model by finite differences in float64.

    The model is copied into float64 (its weights and loss; the optimizer is irrelevant), the first
    ``MAX_SAMPLES`` rows of ``(x, y)`` form the batch, and the copy's training backward pass is compared
    with central differences of its loss: every element (``mode="full"``) for small models, random
    directions (``mode="random"``) above ``FULL_MODE_LIMIT`` parameters.

    Returns a `ModelCheck`; ``result.passed`` and ``print(result)`` give the verdict per layer.
    """
    if not isinstance(model, fd.Sequential):
        raise TypeError(f"model: expected a fastdnn.Sequential, received {type(model).__name__}")
    if not model.compiled:
        raise RuntimeError("model: check_model needs a compiled model (the loss is what is differentiated)")
    x = np.asarray(x)[:MAX_SAMPLES]
    y = np.asarray(y)[:MAX_SAMPLES]
    previous = fd.config.floatx()
    fd.config.set_floatx("float64")
    try:
        copy = fd.Sequential.from_config(model.get_config())
        copy.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss=model.loss.get_config())
        copy._require_built("check_model")
    finally:
        fd.config.set_floatx(previous)
    copy.set_weights([w.astype(np.float64) for w in model.get_weights()])
    case = model_case(f"model:{model.name}", copy, x, y)
    if mode is None:
        mode = "full" if copy.count_params() <= FULL_MODE_LIMIT else "random"
    return ModelCheck(check(case, mode, np.random.default_rng(seed)))
