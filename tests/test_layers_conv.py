"""Conv1D and Conv2D: kernels against the NumPy reference, shapes, arguments, configs, summaries."""

import numpy as np
import pytest

import fastdnn as fd
from fastdnn.kernels.cpu import activation as activation_kernels
from fastdnn.kernels.cpu import conv as conv_kernels
from tests.conftest import DTYPE_PLANS, DTYPES
from fastdnn.verify import reference

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}

# (input shape with batch, filters, kernel_size, strides, padding, dilation, activation)
CONV2D = [
    ((1, 5, 5, 1), 1, 3, 1, "valid", 1, "linear"),
    ((3, 7, 6, 2), 4, (3, 2), (2, 1), "same", 1, "tanh"),
    ((2, 8, 9, 3), 5, 3, 1, "same", 2, "relu"),
    ((4, 6, 6, 3), 2, (1, 1), 1, "valid", 1, "sigmoid"),
    ((2, 9, 7, 4), 3, (4, 3), (3, 2), "valid", 1, "gelu"),
    ((5, 5, 5, 2), 6, 5, 2, "same", 1, "softmax"),
    # one input channel (im2col's tap-by-tap path): padding, strides, dilation, a window wider than the input
    ((2, 12, 11, 1), 6, 5, 1, "same", 1, "relu"),
    ((2, 9, 8, 1), 3, (5, 3), (2, 3), "same", 1, "tanh"),
    ((2, 8, 7, 1), 2, 3, 1, "same", (2, 3), "linear"),
    ((1, 3, 4, 1), 2, 5, 2, "same", 1, "linear"),
]
CONV1D = [
    ((1, 5, 1), 1, 2, 1, "valid", 1, "linear"),
    ((3, 11, 4), 5, 3, 2, "same", 1, "tanh"),
    ((2, 9, 2), 3, 3, 1, "causal", 2, "elu"),
    ((4, 8, 3), 2, 4, 3, "causal", 1, "relu"),
    ((2, 10, 1), 2, 3, 2, "same", 1, "relu"),
    ((2, 9, 1), 3, 3, 1, "causal", 2, "linear"),
]


def _built(layer, shape, dtype):
    layer.build(shape[1:], dtype)
    return layer


def _per_axis(value, rank):
    """An int or tuple argument as one value per axis, read here (not from the layer under test)."""
    return (value,) * rank if isinstance(value, int) else tuple(value)


@pytest.mark.parametrize("dtype, plan", DTYPE_PLANS, indirect=["plan"])
@pytest.mark.parametrize("spec", CONV2D + CONV1D)
def test_conv_layer_matches_reference(dtype, spec, plan, rng):
    shape, filters, kernel_size, strides, padding, dilation, activation = spec
    cls = fd.layers.Conv2D if len(shape) == 4 else fd.layers.Conv1D
    layer = _built(cls(filters, kernel_size, strides=strides, padding=padding, dilation_rate=dilation, activation=activation), shape, dtype)
    layer.params["b"][...] = rng.normal(size=filters)
    x = rng.normal(size=shape).astype(dtype)
    y = layer.forward(x, training=True)
    assert y.dtype == dtype and y.shape == (shape[0], *layer.output_shape)

    # The reference is 2-D: a 1-D convolution is one of height 1.
    one = (1,) * (2 - layer.rank)
    x4 = x.reshape(shape[0], *one, *shape[1:])
    K = layer.params["W"].reshape(*one, *layer.params["W"].shape)
    rank = len(shape) - 2
    geometry = ((*one, *_per_axis(strides, rank)), padding, (*one, *_per_axis(dilation, rank)), activation)
    _, y_ref = reference.conv_forward(x4, K, layer.params["b"], *geometry)
    np.testing.assert_allclose(y, y_ref.reshape(y.shape), **TOL[dtype])

    dLdY = rng.normal(size=y.shape).astype(dtype)
    dX = layer.backward(dLdY)
    dX_ref, dK_ref, db_ref = reference.conv_backward(x4, K, layer.params["b"], dLdY.reshape(y_ref.shape), *geometry)
    np.testing.assert_allclose(dX, dX_ref.reshape(x.shape), **TOL[dtype])
    np.testing.assert_allclose(layer.grads["W"], dK_ref.reshape(layer.params["W"].shape), **TOL[dtype])
    np.testing.assert_allclose(layer.grads["b"], db_ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_and_col2im_are_adjoint(dtype, rng):
    # <im2col(x), c> == <x, col2im(c)> for any x and c: col2im is the exact transpose.
    x = rng.normal(size=(2, 6, 5, 3)).astype(dtype)
    geometry = (3, 2, 2, 1, 1, 2, 1, 1)  # kh, kw, sh, sw, dh, dw, pad_top, pad_left
    oh, ow = 3, 4
    cols = np.empty((2 * oh * ow, 3 * 2 * 3), dtype)
    conv_kernels.im2col(x, *geometry, oh, ow, cols)
    c = rng.normal(size=cols.shape).astype(dtype)
    back = np.empty_like(x)
    conv_kernels.col2im(c, *geometry, oh, ow, back)
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), rtol=1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("channels", [1, 2])  # by planes, by im2col
def test_no_bias_no_input_gradient_and_fused_logits(channels, plan, rng):
    layer = _built(fd.layers.Conv2D(3, 2, use_bias=False, activation="softmax"), (4, 4, 4, channels), np.float64)
    assert set(layer.params) == {"W"} and layer._by_planes == (channels == 1)
    layer.compute_input_grad = False
    layer.keep_logits = True
    x = rng.normal(size=(4, 4, 4, channels))
    y = layer.forward(x, training=True)
    z_ref, y_ref = reference.conv_forward(x, layer.params["W"], None, name="softmax")
    np.testing.assert_allclose(layer.logits.reshape(z_ref.shape), z_ref, rtol=1e-12)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12)
    g = rng.normal(size=y.shape)
    assert layer.backward_from_logits(g) is None
    _, dK_ref, _ = reference.conv_backward(x, layer.params["W"], None, g)  # linear: dL/dz given
    np.testing.assert_allclose(layer.grads["W"], dK_ref, rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "softmax", "linear"])
@pytest.mark.parametrize("input_grad", [True, False])
def test_one_channel_planes_agree_with_im2col_including_non_finite_values(activation, input_grad, plan, rng):
    # The one-channel, stride-1 layer runs by padded planes (relu fused, other activations in passes
    # of their own); the same layer forced onto im2col + GEMM must give the same numbers, NaN for NaN.
    layers = []
    for planes in (True, False):
        layer = _built(fd.layers.Conv2D(5, 3, padding="same", dilation_rate=(1, 2), activation=activation), (3, 7, 6, 1), np.float64)
        assert layer._by_planes
        layer._by_planes = planes
        layer.compute_input_grad = input_grad
        layer.params["W"][...] = rng.normal(size=layer.params["W"].shape) if planes else layers[0].params["W"]
        layer.params["b"][...] = rng.normal(size=5) if planes else layers[0].params["b"]
        layers.append(layer)
    x = rng.normal(size=(3, 7, 6, 1))
    x[0, 2, 3, 0] = np.nan
    ys = [layer.forward(x, training=True).copy() for layer in layers]
    # an inf and a NaN upstream gradient where the output is at most 0 (a relu's derivative is 0
    # there: the product is NaN, not 0) and where it is above
    dLdY = rng.normal(size=(3, 7, 6, 5))
    finite = np.isfinite(ys[0])
    for where in (finite & (ys[0] <= 0), finite & (ys[0] > 0)):
        spots = np.argwhere(where)
        if len(spots):
            dLdY[tuple(spots[0])], dLdY[tuple(spots[-1])] = np.inf, np.nan
    grads = []
    for layer in layers:
        with np.errstate(invalid="ignore"):  # BLAS's products meet the NaN and inf on purpose
            dX = layer.backward(dLdY)
        grads.append((layer.grads["W"].copy(), layer.grads["b"].copy(), None if dX is None else dX.copy()))
    assert np.isnan(ys[0]).any()
    np.testing.assert_allclose(ys[0], ys[1], rtol=1e-12, atol=1e-12)  # equal_nan by default
    for planes, im2col in zip(*grads):
        if planes is None:
            assert im2col is None and not input_grad
        else:
            np.testing.assert_allclose(planes, im2col, rtol=1e-10, atol=1e-12)


def test_lenet_first_layer_runs_by_planes_and_the_others_by_im2col():
    first = _built(fd.layers.Conv2D(6, 5, padding="same", activation="relu"), (1, 28, 28, 1), np.float32)
    second = _built(fd.layers.Conv2D(16, 5, activation="relu"), (1, 14, 14, 6), np.float32)
    strided = _built(fd.layers.Conv2D(6, 5, strides=2, activation="relu"), (1, 28, 28, 1), np.float32)
    assert first._by_planes and not second._by_planes and not strided._by_planes


def test_linear_backward_uses_the_upstream_gradient_directly(rng):
    layer = _built(fd.layers.Conv1D(2, 3), (3, 6, 2), np.float64)
    x = rng.normal(size=(3, 6, 2))
    layer.forward(x, training=True)
    g = rng.normal(size=(3, 4, 2))
    dX = layer.backward(g)
    assert activation_kernels.LINEAR == layer.activation.code
    x4, K = x[:, None], layer.params["W"][None]
    dX_ref, _, _ = reference.conv_backward(x4, K, layer.params["b"], g[:, None])
    np.testing.assert_allclose(dX, dX_ref[:, 0], rtol=1e-12)


@pytest.mark.parametrize(
    "cls, shape, kwargs, expected",
    [
        (fd.layers.Conv2D, (28, 28, 1), dict(filters=6, kernel_size=5), (24, 24, 6)),
        (fd.layers.Conv2D, (28, 28, 1), dict(filters=6, kernel_size=5, padding="same"), (28, 28, 6)),
        (fd.layers.Conv2D, (7, 8, 3), dict(filters=4, kernel_size=3, strides=2), (3, 3, 4)),
        (fd.layers.Conv2D, (7, 8, 3), dict(filters=4, kernel_size=3, strides=2, padding="same"), (4, 4, 4)),
        (fd.layers.Conv2D, (9, 9, 2), dict(filters=4, kernel_size=3, dilation_rate=3), (3, 3, 4)),
        (fd.layers.Conv1D, (50, 8), dict(filters=16, kernel_size=5, strides=2), (23, 16)),
        (fd.layers.Conv1D, (50, 8), dict(filters=16, kernel_size=5, padding="causal", dilation_rate=2), (50, 16)),
    ],
)
def test_output_shapes_and_parameter_counts_match_keras(cls, shape, kwargs, expected):
    layer = cls(**kwargs)
    model = fd.Sequential([fd.layers.Input(shape), layer])
    model.build()
    assert layer.output_shape == expected
    kernel = kwargs["kernel_size"] if isinstance(kwargs["kernel_size"], tuple) else (kwargs["kernel_size"],) * layer.rank
    # Keras: prod(kernel_size) * in_channels * filters + filters
    assert layer.count_params() == int(np.prod(kernel)) * shape[-1] * kwargs["filters"] + kwargs["filters"]
    lines = []
    model.summary(print_fn=lines.append)
    row = next(line for line in lines if layer.name in line)
    assert str((None, *expected)) in row and f"{layer.count_params():,}" in row


def test_lenet_summary_parameter_counts():
    model = fd.Sequential(
        [
            fd.layers.Input((28, 28, 1)),
            fd.layers.Conv2D(6, 5, activation="relu"),
            fd.layers.MaxPooling2D(),
            fd.layers.Conv2D(16, 5, activation="relu"),
            fd.layers.MaxPooling2D(),
            fd.layers.Flatten(),
            fd.layers.Dense(120, activation="relu"),
            fd.layers.Dense(84, activation="relu"),
            fd.layers.Dense(10, activation="softmax"),
        ]
    )
    model.build()
    assert [layer.output_shape for layer in model.layers] == [
        (24, 24, 6), (12, 12, 6), (8, 8, 16), (4, 4, 16), (256,), (120,), (84,), (10,)
    ]
    assert [layer.count_params() for layer in model.layers] == [156, 0, 2416, 0, 0, 30840, 10164, 850]
    assert model.count_params() == 44426


def test_default_names_and_initializers():
    layer = fd.layers.Conv2D(4, 3)
    assert layer.name.startswith("conv2d")
    assert fd.layers.Conv1D(2, 2).name.startswith("conv1d")
    assert type(layer.kernel_initializer).__name__ == "GlorotUniform"
    assert layer.padding == "valid" and layer.strides == (1, 1) and layer.dilation_rate == (1, 1) and layer.use_bias


def test_glorot_fans_include_the_receptive_field():
    fd.set_seed(3)
    layer = _built(fd.layers.Conv2D(8, 3), (1, 6, 6, 4), np.float64)
    limit = np.sqrt(6.0 / (9 * 4 + 9 * 8))
    W = layer.params["W"]
    assert W.shape == (3, 3, 4, 8) and np.abs(W).max() <= limit and np.abs(W).max() > 0.9 * limit
    assert np.all(layer.params["b"] == 0)


@pytest.mark.parametrize(
    "cls, kwargs, error, match",
    [
        (fd.layers.Conv2D, dict(filters=0, kernel_size=3), ValueError, "filters: expected a positive integer"),
        (fd.layers.Conv2D, dict(filters=2, kernel_size=(3,)), TypeError, "kernel_size: expected a positive integer or a tuple of 2"),
        (fd.layers.Conv2D, dict(filters=2, kernel_size=(3, 0)), ValueError, r"kernel_size\[1\]"),
        (fd.layers.Conv2D, dict(filters=2, kernel_size=3, strides=-1), ValueError, r"strides\[0\]"),
        (fd.layers.Conv2D, dict(filters=2, kernel_size=3, padding="causal"), ValueError, "padding: expected one of 'valid', 'same'"),
        (fd.layers.Conv2D, dict(filters=2, kernel_size=3, padding="full"), ValueError, "padding: expected one of"),
        (fd.layers.Conv2D, dict(filters=2, kernel_size=3, strides=2, dilation_rate=2), ValueError, "dilation_rate: strides > 1"),
        (fd.layers.Conv2D, dict(filters=2, kernel_size=3, data_format="channels_first"), ValueError, "data_format: only 'channels_last'"),
        (fd.layers.Conv2D, dict(filters=2, kernel_size=3, activation="nope"), ValueError, "unknown activation 'nope'"),
        (fd.layers.Conv2D, dict(filters=2, kernel_size=3, use_bias=1), TypeError, "use_bias: expected True or False"),
        (fd.layers.Conv1D, dict(filters=2, kernel_size=(3, 3)), TypeError, "kernel_size: expected a positive integer or a tuple of 1"),
    ],
)
def test_arguments_are_validated(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


def test_input_shapes_are_checked_at_build():
    with pytest.raises(ValueError, match=r"input_shape: Conv2D .* expects samples of shape \(height, width, channels\), received \(8, 8\)"):
        fd.layers.Conv2D(2, 3).build((8, 8))
    with pytest.raises(ValueError, match=r"input_shape: Conv1D .* needs at least 5 positions along spatial axis 0, received 4"):
        fd.layers.Conv1D(2, 5).build((4, 3))
    with pytest.raises(ValueError, match="needs at least 5 positions"):
        fd.layers.Conv2D(2, 3, dilation_rate=2).build((8, 4, 1))


@pytest.mark.parametrize(
    "layer",
    [
        fd.layers.Conv2D(4, (3, 2), strides=(2, 1), padding="same", activation="relu", use_bias=False,
                         kernel_initializer="he_normal", bias_initializer="ones", input_shape=(9, 9, 2), name="c"),
        fd.layers.Conv1D(3, 5, padding="causal", dilation_rate=2, activation=fd.activations.get("leaky_relu", negative_slope=0.1)),
    ],
)
def test_config_round_trip(layer):
    clone = fd.layers.get(fd.layers.serialize(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_same_padding_matches_keras_border_convention(rng):
    # Even kernel, "same": total padding 1, all of it after the input (the smaller half, 0, first).
    layer = _built(fd.layers.Conv1D(1, 2, padding="same", use_bias=False), (1, 3, 1), np.float64)
    layer.params["W"][...] = [[[1.0]], [[10.0]]]
    y = layer.forward(np.array([[[1.0], [2.0], [3.0]]]))
    np.testing.assert_allclose(y[0, :, 0], [1 + 20, 2 + 30, 3 + 0])
