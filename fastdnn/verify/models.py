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
    from fastdnn.verify.graph_cases import random_targets

    rng = np.random.default_rng(seed)
    xs = []
    for tensor, reader in zip(model.inputs, model._input_readers):
        if hasattr(reader, "input_dim"):  # integer indices (Embedding)
            xs.append(rng.integers(0, reader.input_dim, (n, *tensor.sample_shape)))
        else:
            xs.append(rng.normal(size=(n, *tensor.sample_shape)))
    return (xs[0] if len(xs) == 1 else xs), random_targets(rng, model, n)


def _first_rows(data):
    """The first ``MAX_SAMPLES`` rows of an array, or of each array of a list or dict."""
    if isinstance(data, dict):
        return {key: np.asarray(value)[:MAX_SAMPLES] for key, value in data.items()}
    if isinstance(data, (list, tuple)) and data and all(isinstance(v, np.ndarray) for v in data):
        return [np.asarray(value)[:MAX_SAMPLES] for value in data]
    return np.asarray(data)[:MAX_SAMPLES]


def check_model(model, x, y, mode=None, seed=0):
    """Check ``d loss / d parameter`` of a compiled model by finite differences in float64.

    The model is copied into float64 (its weights and loss; the optimizer is irrelevant), the first
    ``MAX_SAMPLES`` rows of ``(x, y)`` form the batch, and the copy's training backward pass is compared
    with central differences of its loss: every element (``mode="full"``) for small models, random
    directions (``mode="random"``) above ``FULL_MODE_LIMIT`` parameters.

    Returns a `ModelCheck`; ``result.passed`` and ``print(result)`` give the verdict per layer.
    """
    if not isinstance(model, fd.Model):
        raise TypeError(f"model: expected a fastdnn.Model or Sequential, received {type(model).__name__}")
    if not model.compiled:
        raise RuntimeError("model: check_model needs a compiled model (the loss is what is differentiated)")
    x, y = _first_rows(x), _first_rows(y)
    previous = fd.config.floatx()
    fd.config.set_floatx("float64")
    try:
        own = {type(layer).__name__: type(layer) for layer in model.layers}  # a user's layers, registered or not
        copy = type(model).from_config(model.get_config(), custom_objects=own)
        losses = [loss.get_config() for loss in model._losses]
        copy.compile(optimizer=fd.optimizers.SGD(learning_rate=0.0), loss=losses[0] if len(losses) == 1 else losses,
                     loss_weights=model.loss_weights)
        copy._require_built("check_model")
    finally:
        fd.config.set_floatx(previous)
    copy.set_weights([w.astype(np.float64) for w in model.get_weights()])
    case = model_case(f"model:{model.name}", copy, x, y)
    if mode is None:
        mode = "full" if copy.count_params() <= FULL_MODE_LIMIT else "random"
    return ModelCheck(check(case, mode, np.random.default_rng(seed)))
