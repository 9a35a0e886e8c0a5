import numpy as np
import pytest

import fastdnn as fd
from fastdnn.kernels.cpu import activation as kernels
from tests.conftest import ATOL, DTYPES, RTOL, SHAPES
from fastdnn.verify import reference
from fastdnn.verify.gradcheck import numerical_gradient, relative_error

NAMES = fd.activations.registry.names()
PARAMS = {"leaky_relu": {"negative_slope": 0.2}, "elu": {"alpha": 1.0}}
KINKED = {"relu", "leaky_relu", "elu"}


def _inputs(rng, shape, dtype, name):
    z = rng.normal(0.0, 3.0, shape)
    if name in KINKED:  # keep finite differences away from the kink at 0
        z = np.where(np.abs(z) < 0.05, 0.05 * np.sign(z) + 0.05, z)
    return z.astype(dtype)


def test_every_registered_activation_has_a_reference():
    assert set(NAMES) == set(reference.ACTIVATIONS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_backward_kernels_match_reference(name, dtype, shape, rng):
    function = fd.activations.get(name)
    z = _inputs(rng, shape, dtype, name)
    dLdY = rng.normal(size=shape).astype(dtype)
    y = np.empty_like(z)
    kernels.activation_forward(function.code, z, function.alpha_as(dtype), y)
    np.testing.assert_allclose(y, reference.activation(name, z, **PARAMS.get(name, {})), rtol=RTOL[dtype], atol=ATOL[dtype])
    dLdZ = np.empty_like(z)
    kernels.activation_backward(function.code, z, y, dLdY, function.alpha_as(dtype), dLdZ)
    expected = reference.activation_backward(name, z.astype(np.float64), dLdY, **PARAMS.get(name, {}))
    np.testing.assert_allclose(dLdZ, expected, rtol=10 * RTOL[dtype], atol=10 * ATOL[dtype])


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_finite_differences(name, rng):
    function = fd.activations.get(name)
    z = _inputs(rng, (3, 5), np.float64, name)
    v = rng.normal(size=z.shape)
    numerical = numerical_gradient(lambda: np.sum(v * function(z)), z)
    analytical = function.backward(z, v)
    assert relative_error(numerical, analytical, floor=1e-3) < 1e-6


def test_parameters_change_the_result():
    z = np.array([[-2.0, 3.0]])
    np.testing.assert_allclose(fd.activations.leaky_relu(z), [[-0.4, 3.0]])
    np.testing.assert_allclose(fd.activations.leaky_relu(z, negative_slope=0.1), [[-0.2, 3.0]])
    tenth = fd.activations.get("leaky_relu", negative_slope=0.1)
    np.testing.assert_allclose(tenth(z), [[-0.2, 3.0]])
    np.testing.assert_allclose(fd.activations.elu(z, alpha=2.0), [[2.0 * np.expm1(-2.0), 3.0]])


def test_extreme_inputs_stay_finite():
    z = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4]], dtype=np.float32)
    for name in NAMES:
        y = fd.activations.get(name)(z)
        assert np.all(np.isfinite(y)), name
        assert np.all(np.isfinite(fd.activations.get(name).backward(z, np.ones_like(z)))), name
    np.testing.assert_allclose(fd.activations.sigmoid(z)[0, [0, 4]], [0.0, 1.0])
    np.testing.assert_allclose(fd.activations.softmax(z).sum(axis=-1), 1.0, rtol=1e-6)


def test_softmax_is_over_the_last_axis_of_any_rank(rng):
    z = rng.normal(size=(2, 3, 4))
    np.testing.assert_allclose(fd.activations.softmax(z), reference.softmax(z), rtol=1e-12)


def test_dtype_is_kept_for_floats_and_integers_become_floatx():
    assert fd.activations.relu(np.ones((2, 2), np.float64)).dtype == np.float64
    assert fd.activations.relu(np.ones((2, 2), np.float32)).dtype == np.float32
    assert fd.activations.relu([[1, -2]]).dtype == np.float32


def test_lookup_errors_name_the_choices():
    with pytest.raises(ValueError, match="unknown activation 'rleu'.*relu"):
        fd.activations.get("rleu")
    with pytest.raises(TypeError, match="arbitrary Python callables"):
        fd.activations.get(lambda x: x)
    with pytest.raises(TypeError, match="unknown argument"):
        fd.activations.get("relu", negative_slope=0.1)
    with pytest.raises(ValueError, match="negative_slope"):
        fd.activations.get("leaky_relu", negative_slope=-1.0)


def test_bad_arrays_are_refused_before_any_kernel():
    with pytest.raises(ValueError, match="x: expected finite values"):
        fd.activations.relu(np.array([[1.0, np.nan]]))
    with pytest.raises(TypeError, match="x: expected an array of real numbers"):
        fd.activations.relu(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="x: expected at least one value"):
        fd.activations.relu(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="dLdY: expected shape"):
        fd.activations.relu.backward(np.ones((2, 3)), np.ones((3, 2)))


def test_aliases_resolve():
    assert fd.activations.get("swish") is fd.activations.silu
    assert fd.activations.get(None) is fd.activations.linear
    assert fd.activations.get({"name": "leaky_relu", "negative_slope": 0.3}).alpha == 0.3


def test_float32_exp_and_sigmoid_are_within_an_ulp_or_two_over_the_whole_range():
    import numba

    @numba.njit
    def apply(z, e, s):
        for i in range(z.shape[0]):
            e[i] = kernels.fast_exp_scalar(z[i])
            s[i] = kernels.fast_sigmoid_scalar(z[i])

    z = np.concatenate([np.linspace(-87, 88, 400001), [0.0, 1e-30, -1e-8, 100.0, -100.0, np.inf, -np.inf, np.nan]]).astype(np.float32)
    e, s = np.empty_like(z), np.empty_like(z)
    apply(z, e, s)
    exact = z.astype(np.float64)
    finite = slice(0, -5)
    # relative accuracy everywhere, the far tails of the sigmoid included (not just absolute)
    np.testing.assert_allclose(e[finite], np.exp(exact[finite]), rtol=2.5e-7)
    np.testing.assert_allclose(s[finite], reference.sigmoid(exact[finite]), rtol=2.5e-7)
    assert e[-5] == np.inf and e[-4] == 0.0 and e[-3] == np.inf and e[-2] == 0.0  # 100, -100, inf, -inf
    assert s[-5] == 1.0 and s[-4] < 1e-43 and s[-3] == 1.0 and s[-2] == 0.0
    assert np.isnan(e[-1]) and np.isnan(s[-1])


@pytest.mark.parametrize("name", NAMES)
def test_in_place_kernels_equal_out_of_place(name, rng):
    # y is z (and dL/dz is dL/dy) takes loops of its own: they must compute the same thing
    function = fd.activations.get(name)
    for dtype in (np.float32, np.float64):
        z = rng.normal(scale=3.0, size=(7, 13)).astype(dtype)
        alpha = function.alpha_as(dtype)
        y = np.empty_like(z)
        kernels.activation_forward(function.code, z, alpha, y)
        in_place = z.copy()
        kernels.activation_forward(function.code, in_place, alpha, in_place)
        # softmax's row sum may be reassociated differently: equal to rounding there, exactly elsewhere
        tol = 4 * np.finfo(dtype).eps if name == "softmax" else 0
        np.testing.assert_allclose(in_place, y, rtol=tol, atol=0)
        g = rng.normal(size=z.shape).astype(dtype)
        dz = np.empty_like(z)
        kernels.activation_backward(function.code, z, y, g, alpha, dz)
        kernels.activation_backward(function.code, z, y, g, alpha, g)
        np.testing.assert_allclose(g, dz, rtol=tol, atol=tol)
