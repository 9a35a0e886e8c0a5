"""Flatten and Reshape: views forward and backward, shapes, arguments, configs."""

import numpy as np
import pytest

import fastdnn as fd


@pytest.mark.parametrize("shape", [(1, 3), (2, 3, 4), (5, 2, 3, 4)])
def test_flatten_forward_and_backward(shape, rng):
    layer = fd.layers.Flatten()
    layer.build(shape[1:], np.float32)
    x = rng.normal(size=shape).astype(np.float32)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y, x.reshape(shape[0], -1))
    g = rng.normal(size=y.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(g), g.reshape(shape))


@pytest.mark.parametrize("target, shape, expected", [((3, -1), (2, 6), (3, 2)), ((6, 2), (1, 2, 3, 2), (6, 2)), ((-1,), (3, 2, 2), (4,)), (4, (2, 2, 2), (4,))])
def test_reshape(target, shape, expected, rng):
    layer = fd.layers.Reshape(target)
    model = fd.Sequential([fd.layers.Input(shape[1:]), layer])
    model.build()
    assert layer.output_shape == expected
    x = rng.normal(size=shape).astype(np.float32)
    np.testing.assert_array_equal(layer(x), x.reshape(shape[0], *expected))


def test_summary_shapes():
    model = fd.Sequential([fd.layers.Input((4, 4, 3)), fd.layers.Flatten(), fd.layers.Reshape((12, 4))])
    lines = []
    model.summary(print_fn=lines.append)
    assert any("(None, 48)" in line for line in lines) and any("(None, 12, 4)" in line for line in lines)
    assert model.count_params() == 0


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: fd.layers.Reshape((2, -1, -1)), ValueError, "target_shape: at most one entry may be -1"),
        (lambda: fd.layers.Reshape((2, 0)), ValueError, r"target_shape\[1\]: expected a positive integer"),
        (lambda: fd.layers.Reshape("3x2"), TypeError, "target_shape: expected a non-empty tuple"),
        (lambda: fd.layers.Reshape((4, 4)).build((3, 5)), ValueError, r"target_shape: \(4, 4\) holds 16 values, but samples of shape \(3, 5\) have 15"),
        (lambda: fd.layers.Reshape((4, -1)).build((3, 5)), ValueError, "cannot hold samples of shape"),
        (lambda: fd.layers.Flatten(data_format="channels_first"), ValueError, "data_format"),
    ],
)
def test_arguments_are_validated(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_config_round_trip():
    for layer in (fd.layers.Flatten(name="f"), fd.layers.Reshape((3, -1), input_shape=(6,))):
        clone = fd.layers.get(fd.layers.serialize(layer))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
