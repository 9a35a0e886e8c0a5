"""`check_layer`: the backward pass of any layer, a user's own included, by finite differences."""

import numpy as np

import fastdnn as fd
from fastdnn.verify import report
from fastdnn.verify.cases import _layer_case
from fastdnn.verify.gradcheck import check
from fastdnn.verify.graph_cases import merge_case

#: Above this many inputs and parameters, random-direction mode replaces the full Jacobian.
FULL_MODE_LIMIT = 2000


class LayerCheck:
    """Results of `check_layer`: ``passed``, and ``print(result)`` gives fastdnn-gradcheck's table."""

    def __init__(self, results, seconds=0.0):
        self.results = results
        self.seconds = seconds

    @property
    def passed(self):
        return all(r.passed for r in self.results)

    def __str__(self):
        lines = [report.table(self.results), "", report.summary(self.results, self.seconds)]
        failures = report.failures(self.results)
        return "\n".join(lines + ([failures] if failures else []))


def check_layer(layer, input_shape, batch_size=3, mode=None, seed=0):
    """Check ``layer``'s ``backward`` (input and parameter gradients) against central differences in float64.

    A fresh copy of the layer is made from its ``get_config()`` in float64 and built for
    ``input_shape`` (the sample shape, without the batch axis; a list of shapes for a layer taking
    several inputs); when ``layer`` is built, its weights are copied over. ``batch_size`` random
    samples of N(0, 1) are the input. The engine and report are those of ``fastdnn-gradcheck``.

    Returns a `LayerCheck`.
    """
    import time

    if not isinstance(layer, fd.layers.Layer):
        raise TypeError(f"layer: expected a fastdnn.layers.Layer, received {type(layer).__name__}")
    multiple = layer.multiple_inputs
    shapes = [tuple(s) for s in input_shape] if multiple else tuple(input_shape)
    previous = fd.config.floatx()
    fd.config.set_floatx("float64")
    try:
        copy = type(layer).from_config(layer.get_config())
        copy.build(shapes, np.float64)
    finally:
        fd.config.set_floatx(previous)
    if layer.built:
        copy.set_weights([w.astype(np.float64) for w in layer.get_weights()])
    rng = np.random.default_rng(seed)
    label = type(layer).__name__
    if multiple:
        xs = [rng.normal(size=(batch_size, *s)) for s in shapes]
        case = merge_case(f"layer:{label} {' + '.join(str((batch_size, *s)) for s in shapes)}", copy, xs)
        size = sum(x.size for x in xs)
    else:
        x = rng.normal(size=(batch_size, *shapes))
        case = _layer_case(f"layer:{label} {(batch_size, *shapes)}->{(batch_size, *copy.output_shape)}", copy, x, "")
        size = x.size
    size += sum(p.size for p in copy.params.values())
    if mode is None:
        mode = "full" if size <= FULL_MODE_LIMIT else "random"
    start = time.perf_counter()
    results = check(case, mode, rng)
    return LayerCheck(results, time.perf_counter() - start)
