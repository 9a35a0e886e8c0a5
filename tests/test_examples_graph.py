"""The graph examples run: the residual CNN on digits learns, the apple graph's derivatives are the chain rule's."""

import importlib.util
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _load(relative, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relative))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_residual_cnn_learns_digits():
    example = _load("examples/residual_cnn_digits.py", "residual_cnn_digits")
    model = example.residual_cnn()
    assert [layer.name for layer in model.layers][:5] == ["stem", "block_conv1", "block_conv2", "skip", "block_out"]
    assert example.main(epochs=3, verbose=0) > 0.85


def test_apple_graph_prints_the_chain_rule():
    lines = _load("docs/apple_graph.py", "apple_graph").run()
    text = "\n".join(lines)
    assert "apple 100 x count 2 = 200" in text and "= 220" in text
    derivatives = {line.split("d price / d ")[1].split()[0]: float(line.rsplit("= ", 1)[1]) for line in lines if "d price / d" in line}
    assert derivatives == pytest.approx({"apples_times_count": 1.1, "tax": 200.0, "apple": 2.2, "count": 110.0})
