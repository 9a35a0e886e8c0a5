"""The course's apple example as a fastdnn graph (run by ``conf.py`` at build time; its output is
what ``concepts/computational-graph.rst`` shows).

Buying 2 apples at 100 each with 10% tax is the graph ``price = (apple * count) * tax``: two
multiplication nodes. The forward pass runs the nodes left to right; the backward pass runs them
right to left, each multiplying the gradient that reaches it by its local derivative: for
``out = a * b``, ``dL/da = dL/dout * b`` and ``dL/db = dL/dout * a``.

Usage: ``python docs/apple_graph.py`` prints the table.
"""

import os
import sys

import numpy as np


def build():
    """The graph: three inputs and two Multiply nodes, as an ``fd.Model`` (float64)."""
    import fastdnn as fd

    previous = fd.config.floatx()
    fd.config.set_floatx("float64")
    try:
        apple, count, tax = fd.Input((1,), name="apple"), fd.Input((1,), name="count"), fd.Input((1,), name="tax")
        subtotal = fd.layers.Multiply(name="apples_times_count")([apple, count])
        price = fd.layers.Multiply(name="subtotal_times_tax")([subtotal, tax])
        return fd.Model([apple, count, tax], price, name="apples")
    finally:
        fd.config.set_floatx(previous)


def run(values=(100.0, 2.0, 1.1)):
    """Forward over the nodes in topological order, backward in reverse from ``dL/dprice = 1``.

    Returns the lines of the table: each node's inputs and output, then each derivative.
    """
    model = build()
    known = {tensor.name: np.array([[v]]) for tensor, v in zip(model.inputs, values)}
    lines = ["forward (left to right)"]
    for node in model.nodes:  # the layer calls, in topological order
        layer, names = node.layer, [t.name for t in node.inputs]
        out = layer.forward([known[n] for n in names], training=True)
        known[layer.name] = out
        lines.append(f"  {layer.name:20s} {' x '.join(f'{n} {known[n].item():g}' for n in names)} = {out.item():g}")
    assert np.isclose(model.predict([np.array([[v]]) for v in values]).item(), known[model.layers[-1].name].item())
    lines.append("backward (right to left), from dL/dprice = 1")
    gradient = {model.layers[-1].name: np.ones((1, 1))}
    for node in reversed(model.nodes):
        layer, names = node.layer, [t.name for t in node.inputs]
        upstream = gradient[layer.name]
        parts = layer.backward(upstream)
        for name, other, part in zip(names, reversed(names), parts):
            gradient[name] = part
            lines.append(
                f"  d price / d {name:18s} = {upstream.item():g} (reaching {layer.name}) x {known[other].item():g} "
                f"(local derivative: the other factor, {other}) = {part.item():g}"
            )
    return lines


def main(path=None):
    text = "\n".join(run()) + "\n"
    if path is None:
        sys.stdout.write(text)
    else:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
