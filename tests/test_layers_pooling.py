"""Max, average and global pooling: kernels against the NumPy reference, shapes, arguments, configs."""

import numpy as np
import pytest

import fastdnn as fd
from tests.conftest import DTYPE_PLANS, DTYPES
from fastdnn.verify import reference

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}

# (input shape with batch, pool_size, strides, padding)
POOL2D = [
    ((1, 4, 4, 1), 2, None, "valid"),
    ((3, 7, 5, 2), 2, None, "valid"),
    ((2, 7, 5, 3), (3, 2), (2, 1), "same"),
    ((2, 5, 6, 4), 3, 1, "same"),
    ((4, 9, 9, 2), 3, 2, "valid"),
    ((2, 3, 3, 1), 4, 4, "same"),
]
POOL1D = [((1, 4, 1), 2, None, "valid"), ((3, 9, 2), 3, 2, "same"), ((2, 10, 3), 4, 1, "valid"), ((2, 7, 2), 2, 3, "same")]


def _built(layer, shape, dtype):
    layer.build(shape[1:], dtype)
    return layer


def _as_2d(x, rank):
    return x if rank == 2 else x[:, None]


@pytest.mark.parametrize("dtype, plan", DTYPE_PLANS, indirect=["plan"])
@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize("spec", POOL2D + POOL1D)
def test_pooling_matches_reference(dtype, kind, spec, plan, rng):
    shape, pool_size, strides, padding = spec
    rank = len(shape) - 2
    cls = {("max", 2): fd.layers.MaxPooling2D, ("max", 1): fd.layers.MaxPooling1D,
           ("average", 2): fd.layers.AveragePooling2D, ("average", 1): fd.layers.AveragePooling1D}[kind, rank]
    layer = _built(cls(pool_size, strides, padding), shape, dtype)
    x = rng.normal(size=shape).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.shape == (shape[0], *layer.output_shape)
    # the geometry from the arguments, not from the layer under test
    pool = (pool_size,) * rank if isinstance(pool_size, int) else tuple(pool_size)
    step = pool if strides is None else (strides,) * rank if isinstance(strides, int) else tuple(strides)
    pool, step = (1,) * (2 - rank) + pool, (1,) * (2 - rank) + step
    forward, backward = (reference.max_pool, reference.max_pool_backward) if kind == "max" else (reference.avg_pool, reference.avg_pool_backward)
    y_ref = forward(_as_2d(x, rank), pool, step, padding)
    np.testing.assert_allclose(y, y_ref.reshape(y.shape), **TOL[dtype])
    dLdY = rng.normal(size=y.shape).astype(dtype)
    dX = layer.backward(dLdY)
    dX_ref = backward(_as_2d(x, rank), _as_2d(dLdY, rank), pool, step, padding)
    np.testing.assert_allclose(dX, dX_ref.reshape(x.shape), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 2), (2, 4, 5, 3), (1, 1, 1, 6)])
def test_global_pooling_matches_reference(dtype, kind, shape, rng):
    rank = len(shape) - 2
    cls = getattr(fd.layers, f"Global{'Max' if kind == 'max' else 'Average'}Pooling{rank}D")
    layer = _built(cls(), shape, dtype)
    x = rng.normal(size=shape).astype(dtype)
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, reference.global_pool(kind, x), **TOL[dtype])
    dLdY = rng.normal(size=y.shape).astype(dtype)
    np.testing.assert_allclose(layer.backward(dLdY), reference.global_pool_backward(kind, x, dLdY), **TOL[dtype])


def test_max_pooling_ignores_padding_and_routes_to_the_first_maximum():
    layer = _built(fd.layers.MaxPooling1D(2, padding="same"), (1, 3, 1), np.float64)
    x = np.array([[[-5.0], [-7.0], [-3.0]]])
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(y[0, :, 0], [-5.0, -3.0])  # the padded border is not a 0
    tie = _built(fd.layers.MaxPooling1D(3), (1, 3, 1), np.float64)
    tie.forward(np.array([[[1.0], [4.0], [4.0]]]), training=True)
    np.testing.assert_array_equal(tie.backward(np.array([[[2.0]]]))[0, :, 0], [0.0, 2.0, 0.0])


def test_average_pooling_same_divides_by_real_positions():
    layer = _built(fd.layers.AveragePooling2D(2, padding="same"), (1, 3, 3, 1), np.float64)
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    y = layer.forward(x)[0, :, :, 0]
    np.testing.assert_allclose(y, [[(0 + 1 + 3 + 4) / 4, (2 + 5) / 2], [(6 + 7) / 2, 8.0]])


def test_nan_propagates_through_max_pooling():
    layer = _built(fd.layers.MaxPooling1D(2), (1, 4, 1), np.float64)
    y = layer.forward(np.array([[[1.0], [np.nan], [np.nan], [2.0]]]))
    assert np.isnan(y).all()
    glob = _built(fd.layers.GlobalMaxPooling1D(), (1, 3, 1), np.float64)
    assert np.isnan(glob.forward(np.array([[[1.0], [np.nan], [5.0]]]))).all()


@pytest.mark.parametrize(
    "layer, shape, expected",
    [
        (fd.layers.MaxPooling2D(), (24, 24, 6), (12, 12, 6)),
        (fd.layers.MaxPooling2D((3, 3), strides=2), (7, 7, 2), (3, 3, 2)),
        (fd.layers.AveragePooling2D(3, strides=2, padding="same"), (7, 8, 2), (4, 4, 2)),
        (fd.layers.MaxPooling1D(), (9, 4), (4, 4)),
        (fd.layers.AveragePooling1D(4, strides=1, padding="same"), (9, 4), (9, 4)),
        (fd.layers.GlobalAveragePooling2D(), (5, 6, 7), (7,)),
        (fd.layers.GlobalMaxPooling2D(keepdims=True), (5, 6, 7), (1, 1, 7)),
        (fd.layers.GlobalMaxPooling1D(), (5, 7), (7,)),
        (fd.layers.GlobalAveragePooling1D(keepdims=True), (5, 7), (1, 7)),
    ],
)
def test_output_shapes_and_no_parameters(layer, shape, expected):
    model = fd.Sequential([fd.layers.Input(shape), layer])
    model.build()
    assert layer.output_shape == expected and layer.count_params() == 0
    lines = []
    model.summary(print_fn=lines.append)
    assert any(str((None, *expected)) in line and line.rstrip().endswith(" 0") for line in lines)


def test_defaults_and_keras_short_names():
    layer = fd.layers.MaxPooling2D()
    assert layer.pool_size == (2, 2) and layer.strides == (2, 2) and layer.padding == "valid"
    assert fd.layers.AveragePooling1D(3).strides == (3,)
    assert fd.layers.MaxPool2D is fd.layers.MaxPooling2D and fd.layers.GlobalAvgPool1D is fd.layers.GlobalAveragePooling1D
    assert fd.layers.get({"class_name": "MaxPool2D", "config": {}}).pool_size == (2, 2)
    assert layer.name.startswith("max_pooling2d")


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: fd.layers.MaxPooling2D(0), ValueError, r"pool_size\[0\]: expected a positive integer"),
        (lambda: fd.layers.MaxPooling2D((2, 2, 2)), TypeError, "pool_size: expected a positive integer or a tuple of 2"),
        (lambda: fd.layers.AveragePooling1D(2, strides=0), ValueError, r"strides\[0\]"),
        (lambda: fd.layers.MaxPooling1D(2, padding="causal"), ValueError, "padding: expected one of 'valid', 'same'"),
        (lambda: fd.layers.MaxPooling2D(data_format="channels_first"), ValueError, "data_format"),
        (lambda: fd.layers.GlobalMaxPooling2D(keepdims="no"), TypeError, "keepdims: expected True or False"),
        (lambda: fd.layers.MaxPooling2D(3).build((2, 8, 1)), ValueError, "needs at least 3 positions along spatial axis 0, received 2"),
        (lambda: fd.layers.GlobalAveragePooling2D().build((4, 4)), ValueError, r"expects samples of shape \(height, width, channels\)"),
    ],
)
def test_arguments_and_shapes_are_validated(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "layer",
    [
        fd.layers.MaxPooling2D((3, 2), strides=(1, 2), padding="same", name="p"),
        fd.layers.AveragePooling1D(4, input_shape=(10, 3)),
        fd.layers.GlobalMaxPooling1D(keepdims=True),
        fd.layers.GlobalAveragePooling2D(),
    ],
)
def test_config_round_trip(layer):
    clone = fd.layers.get(fd.layers.serialize(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pooling_2x2_windows_nan_anywhere_wins_and_ties_go_to_the_first(dtype):
    # Whole 2 x 2 windows take an unrolled path: a NaN at any of the four positions (channel p holds
    # it at position p) is the maximum and drops its gradient; tied maxima route to the first position.
    layer = _built(fd.layers.MaxPooling2D(2), (1, 2, 4, 4), dtype)
    x = np.zeros((1, 2, 4, 4), dtype)
    positions = [(0, 0), (0, 1), (1, 0), (1, 1)]
    for p, (h, w) in enumerate(positions):
        x[0, h, w, p] = np.nan  # first window: a NaN in channel p at position p
        x[0, h, 2 + w, p] = 1.0  # second window: the maximum 1 at position p ...
        for h2, w2 in positions[p + 1:]:
            x[0, h2, 2 + w2, p] = 1.0  # ... tied with every later position
    y = layer.forward(x, training=True)
    assert np.isnan(y[0, 0, 0]).all()
    np.testing.assert_array_equal(y[0, 0, 1], 1.0)
    dX = layer.backward(np.full(y.shape, 2.0, dtype))
    np.testing.assert_array_equal(dX[0, :, :2], 0.0)  # NaN maxima: gradients dropped
    expected = np.zeros((2, 2, 4), dtype)
    for p, (h, w) in enumerate(positions):
        expected[h, w, p] = 2.0
    np.testing.assert_array_equal(dX[0, :, 2:], expected)
