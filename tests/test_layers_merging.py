"""Merge layers against the NumPy references (verify/reference.py), in float32 and float64, forward and backward."""

import numpy as np
import pytest

import fastdnn as fd
from fastdnn.verify import reference

L = fd.layers

ELEMENTWISE = [("add", L.Add, 3), ("subtract", L.Subtract, 2), ("multiply", L.Multiply, 3), ("average", L.Average, 3),
               ("maximum", L.Maximum, 3), ("minimum", L.Minimum, 2)]


def _tolerance(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, cls, count", ELEMENTWISE)
def test_elementwise_merges_match_the_reference(rng, dtype, kind, cls, count):
    shape = (5, 3, 4)
    xs = [rng.normal(size=shape).astype(dtype) for _ in range(count)]
    xs[1][0, 0, :2] = xs[0][0, 0, :2]  # ties: the first input takes the gradient
    layer = cls()
    layer.build([shape[1:]] * count, dtype)
    y = layer.forward(xs, training=True)
    np.testing.assert_allclose(y, reference.merge(kind, xs), **_tolerance(dtype))
    g = rng.normal(size=shape).astype(dtype)
    for got, expected in zip(layer.backward(g), reference.merge_backward(kind, xs, g)):
        np.testing.assert_allclose(got, expected, **_tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis, shapes", [(-1, [(4, 2), (4, 3)]), (1, [(2, 3, 2), (1, 3, 2), (3, 3, 2)]), (2, [(2, 1, 2), (2, 4, 2)])])
def test_concatenate_matches_the_reference(rng, dtype, axis, shapes):
    n = 3
    xs = [rng.normal(size=(n, *s)).astype(dtype) for s in shapes]
    layer = L.Concatenate(axis=axis)
    layer.build(shapes, dtype)
    y = layer.forward(xs, training=True)
    np.testing.assert_array_equal(y, reference.concatenate(xs, axis))
    g = rng.normal(size=y.shape).astype(dtype)
    splits = np.cumsum([x.shape[axis] for x in xs])[:-1]
    for got, expected in zip(layer.backward(g), np.split(g, splits, axis=axis)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("axes, shapes", [(1, [(4,), (4,)]), ((2, 2), [(3, 4), (2, 4)]), ((1, 2), [(4, 3), (2, 4)]), ((1, 1), [(4, 3), (4, 2)])])
def test_dot_matches_the_reference(rng, dtype, normalize, axes, shapes):
    n = 3
    x, y = (rng.normal(size=(n, *s)).astype(dtype) for s in shapes)
    layer = L.Dot(axes=axes, normalize=normalize)
    layer.build(shapes, dtype)
    out = layer.forward([x, y], training=True)
    pair = axes if isinstance(axes, tuple) else (axes, axes)
    expected = reference.dot(x, y, pair, normalize)
    assert out.shape == expected.shape == (n, *layer.output_shape)
    np.testing.assert_allclose(out, expected, **_tolerance(dtype))


def test_merge_layers_run_eagerly_on_arrays(rng):
    a, b = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32)
    np.testing.assert_allclose(L.Subtract()([a, b]), a - b)
    with pytest.raises(TypeError, match=r"inputs: layer 'add_\d+' \(Add\) expects a list of arrays"):
        L.Add(name=None)(a)


def test_merge_configs_round_trip():
    for layer in (L.Concatenate(axis=2), L.Dot(axes=(1, 2), normalize=True), L.Maximum()):
        copy = fd.layers.get(fd.layers.serialize(layer))
        assert type(copy) is type(layer) and copy.get_config() == layer.get_config()


def test_bad_merge_arguments_are_refused():
    with pytest.raises(ValueError, match=r"axis: expected a non-zero integer"):
        L.Concatenate(axis=0)
    with pytest.raises(ValueError, match=r"axes: expected a non-zero integer or a pair"):
        L.Dot(axes=(1, 2, 3))
    with pytest.raises(TypeError, match=r"normalize: expected"):
        L.Dot(axes=1, normalize="yes")
