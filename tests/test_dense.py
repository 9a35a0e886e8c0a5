import numpy as np
import pytest

import fastdnn as fd
from fastdnn.kernels.cpu import activation as activation_kernels
from fastdnn.kernels.cpu import dense as kernels
from tests.conftest import DTYPES
from fastdnn.verify import reference
from fastdnn.verify.gradcheck import numerical_gradient, relative_error

# (batch, n_in, n_out): a batch of 1, single units, non-square.
SIZES = [(1, 1, 1), (1, 5, 3), (7, 1, 4), (16, 9, 2), (33, 20, 17)]
ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "gelu", "silu", "elu", "softmax"]
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_kernels_match_reference(dtype, size, name, rng):
    n, n_in, n_out = size
    x = rng.normal(size=(n, n_in)).astype(dtype)
    W = rng.normal(size=(n_in, n_out)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    dLdY = rng.normal(size=(n, n_out)).astype(dtype)
    act = fd.activations.get(name)
    z = np.empty((n, n_out), dtype)
    y = np.empty((n, n_out), dtype)
    kernels.dense_forward(x, W, b, act.code, act.alpha_as(dtype), z, y)
    z_ref, y_ref = reference.dense_forward(x, W, b, name)
    np.testing.assert_allclose(z, z_ref, **TOL[dtype])
    np.testing.assert_allclose(y, y_ref, **TOL[dtype])

    dLdZ = np.empty_like(z)
    dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(x)
    kernels.dense_backward(x, W, z, y, dLdY, act.code, act.alpha_as(dtype), dLdZ, dW, db, dX, True)
    dX_ref, dW_ref, db_ref = reference.dense_backward(x, W, b, dLdY, name)
    np.testing.assert_allclose(dX, dX_ref, **TOL[dtype])
    np.testing.assert_allclose(dW, dW_ref, **TOL[dtype])
    np.testing.assert_allclose(db, db_ref, **TOL[dtype])


def test_forward_in_place_when_z_is_y(rng):
    x, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)
    y = np.empty((4, 5))
    kernels.dense_forward(x, W, b, activation_kernels.SOFTMAX, 0.0, y, y)
    np.testing.assert_allclose(y, reference.dense_forward(x, W, b, "softmax")[1], rtol=1e-12)


def test_no_bias_and_no_input_gradient(rng):
    x, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    y = np.empty((4, 2))
    kernels.dense_forward(x, W, np.empty(0), activation_kernels.LINEAR, 0.0, y, y)
    np.testing.assert_allclose(y, x @ W, rtol=1e-12)
    dX = np.full((4, 3), 7.0)
    dW = np.empty_like(W)
    kernels.dense_backward(x, W, y, y, np.ones((4, 2)), activation_kernels.LINEAR, 0.0, y, dW, np.empty(0), dX, False)
    assert np.all(dX == 7.0)  # untouched
    np.testing.assert_allclose(dW, x.T @ np.ones((4, 2)), rtol=1e-12)


@pytest.mark.parametrize("name", ["linear", "tanh", "relu", "softmax", "gelu"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_layer_backward_matches_finite_differences(name, use_bias, rng):
    fd.config.set_floatx("float64")
    try:
        layer = fd.layers.Dense(4, activation=name, use_bias=use_bias)
        layer.build((3,))
    finally:
        fd.config.set_floatx("float32")
    x = rng.normal(size=(2, 3))
    v = rng.normal(size=(2, 4))

    def loss():
        return np.sum(v * layer.forward(x))

    z = layer.forward(x, training=True) if name == "linear" else x @ layer.params["W"]
    assert np.min(np.abs(z)) > 1e-3  # the seeded draw keeps relu away from its kink
    layer.forward(x, training=True)
    dX = layer.backward(v).copy()
    for key in layer.params:
        numerical = numerical_gradient(loss, layer.params[key])
        layer.forward(x, training=True)
        layer.backward(v)
        assert relative_error(numerical, layer.grads[key], floor=1e-3) < 1e-6, key
    numerical = numerical_gradient(loss, x)
    assert relative_error(numerical, dX, floor=1e-3) < 1e-6


def test_dense_layer_on_higher_rank_input(rng):
    layer = fd.layers.Dense(3)
    x = rng.normal(size=(2, 4, 5)).astype(np.float32)
    y = layer(x)
    assert y.shape == (2, 4, 3)
    np.testing.assert_allclose(y, x @ layer.params["W"] + layer.params["b"], rtol=1e-5, atol=1e-6)


def test_layer_call_checks_input(rng):
    layer = fd.layers.Dense(3, input_shape=(4,))
    layer(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 4\), received \(2, 5\)"):
        layer(np.ones((2, 5)))


def test_dense_config_round_trip():
    layer = fd.layers.Dense(
        7,
        activation=fd.activations.get("leaky_relu", negative_slope=0.1),
        use_bias=False,
        kernel_initializer="he_normal",
        input_shape=(3,),
        name="hidden",
    )
    clone = fd.layers.get(fd.layers.serialize(layer))
    assert clone.get_config() == layer.get_config()
    assert clone.activation.alpha == 0.1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"units": 0}, ValueError, "units: expected a positive integer, received 0"),
        ({"units": 2.5}, TypeError, "units: expected a positive integer"),
        ({"units": 3, "activation": "nope"}, ValueError, "unknown activation 'nope'"),
        ({"units": 3, "use_bias": "yes"}, TypeError, "use_bias: expected True or False"),
        ({"units": 3, "kernel_initializer": "nope"}, ValueError, "unknown initializer 'nope'"),
        ({"units": 3, "input_shape": (0,)}, ValueError, r"input_shape\[0\]"),
    ],
)
def test_dense_arguments_are_validated(kwargs, error, match):
    with pytest.raises(error, match=match):
        fd.layers.Dense(**kwargs)
