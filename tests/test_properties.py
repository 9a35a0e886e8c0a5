"""Property-based tests: what any correct implementation satisfies, on random shapes and extreme values.

Stated tolerances: float32 results within ``F32_RTOL`` relative (``F32_ATOL`` absolute) of float64;
softmax rows sum to 1 within 1e-12 (float64) and 1e-6 (float32). Profiles: ``ci`` (default) and
``long`` (``HYPOTHESIS_PROFILE=long``), registered in conftest.py.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastdnn as fd
from fastdnn.verify import spaces
from fastdnn.verify import strategies as fst

ACTIVATIONS = fd.activations.registry.names()
F32_RTOL = 2e-6
F32_ATOL = 1e-6


@st.composite
def activation_inputs(draw):
    shape = draw(fst.batch_shapes())
    return draw(fst.real_arrays(shape))


# -- activations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(z=activation_inputs(), data=st.data())
def test_activation_outputs_and_gradients_are_finite(name, z, data):
    function = fd.activations.get(name)
    dLdY = data.draw(fst.real_arrays(z.shape, extreme=1e3))
    for dtype in (np.float32, np.float64):
        x = z.astype(dtype)
        assert np.all(np.isfinite(function(x)))
        assert np.all(np.isfinite(function.backward(x, dLdY.astype(dtype))))


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(z=activation_inputs())
def test_activation_float32_agrees_with_float64(name, z):
    function = fd.activations.get(name)
    precise = function(z)  # z holds float32-representable values
    single = function(z.astype(np.float32))
    np.testing.assert_allclose(single, precise, rtol=F32_RTOL, atol=F32_ATOL)


@given(z=activation_inputs(), shift=st.floats(-100.0, 100.0))
def test_softmax_rows_sum_to_one_and_ignore_shifts(z, shift):
    y = fd.activations.softmax(z)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(y >= 0.0)
    np.testing.assert_allclose(fd.activations.softmax(z + shift), y, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(fd.activations.softmax(z.astype(np.float32)).sum(axis=-1), 1.0, rtol=1e-6)


@given(z=activation_inputs())
def test_bounded_activations_stay_in_their_ranges(z):
    assert np.all((fd.activations.sigmoid(z) >= 0) & (fd.activations.sigmoid(z) <= 1))
    assert np.all(np.abs(fd.activations.tanh(z)) <= 1)
    assert np.all(fd.activations.relu(z) >= 0)
    assert np.all(fd.activations.softplus(z) >= 0)


# -- losses ---------------------------------------------------------------------------------------------


@st.composite
def loss_problems(draw):
    """(loss, y_true, y_pred): every registered loss, logits and probability forms, bounds included."""
    name = draw(st.sampled_from(fd.losses.registry.names()))
    cls = fd.losses.registry.lookup(name)
    from_logits = cls.logits_kernel is not None and draw(st.booleans())
    loss = cls(from_logits=from_logits) if cls.logits_kernel is not None else cls()
    n, d = draw(fst.batch_shapes())
    if name == "sparse_categorical_crossentropy":
        d = max(d, 2)
    shape = (n, d)
    if name in ("mean_squared_error", "mean_absolute_error") or from_logits:
        y_pred = draw(fst.real_arrays(shape))
    elif name == "binary_crossentropy":
        y_pred = draw(fst.probability_arrays(shape))
    else:
        y_pred = draw(fst.distributions(shape))
    if name == "sparse_categorical_crossentropy":
        y_true = np.array(draw(st.lists(st.integers(0, d - 1), min_size=n, max_size=n)))
    elif name == "categorical_crossentropy":
        y_true = draw(fst.distributions(shape))
    elif name == "binary_crossentropy":
        y_true = draw(fst.probability_arrays(shape))
    else:
        y_true = draw(fst.real_arrays(shape))
    return loss, y_true, y_pred


@given(problem=loss_problems())
def test_losses_are_finite_and_non_negative_with_finite_gradients(problem):
    loss, y_true, y_pred = problem
    for dtype in (np.float32, np.float64):
        value = loss(y_true, y_pred.astype(dtype))
        assert np.isfinite(value) and value >= -1e-12
        assert np.all(np.isfinite(loss.gradient(y_true, y_pred.astype(dtype))))


@given(problem=loss_problems())
def test_loss_float32_agrees_with_float64(problem):
    loss, y_true, y_pred = problem
    precise = loss(y_true, y_pred)
    single = loss(y_true, y_pred.astype(np.float32))
    assert single == pytest.approx(precise, rel=1e-5, abs=1e-5)


# -- update rules -----------------------------------------------------------------------------------------


def _step_sizes(optimizer, p0, gradients):
    params = [p0.copy()]
    steps = []
    for g in gradients:
        before = params[0].copy()
        optimizer.apply([g], params)
        steps.append(params[0] - before)
    return steps


@given(g=fst.gradient_arrays((6,)), lr=st.floats(1e-4, 1e-1))
def test_adam_first_step_moves_each_weight_by_about_the_learning_rate(g, lr):
    (step,) = _step_sizes(fd.optimizers.Adam(learning_rate=lr), np.zeros(6), [g])
    ratio = np.abs(step) / lr
    assert np.all((ratio > 0.99) & (ratio <= 1.0 + 1e-9))
    assert np.all(np.sign(step) == -np.sign(g))


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
@given(data=st.data(), scale=st.floats(1.0, 100.0))
def test_scaling_gradients_leaves_adam_and_rmsprop_steps_nearly_unchanged(name, data, scale):
    gradients = [data.draw(fst.gradient_arrays((5,), low=0.1, high=10.0)) for _ in range(4)]
    p0 = data.draw(fst.real_arrays((5,), extreme=10.0))
    plain = _step_sizes(fd.optimizers.get(name), p0, gradients)
    scaled = _step_sizes(fd.optimizers.get(name), p0, [scale * g for g in gradients])
    for a, b in zip(plain, scaled):
        np.testing.assert_allclose(b, a, rtol=1e-3)


@given(data=st.data())
def test_adagrad_effective_step_never_grows(data):
    """The step actually taken, per unit of gradient (|p_t - p_(t+1)| / |g|), never grows."""
    optimizer = fd.optimizers.Adagrad(learning_rate=0.1)
    params = [np.zeros(4)]
    previous = np.full(4, np.inf)
    measured = 0
    for _ in range(5):
        g = data.draw(fst.real_arrays((4,), extreme=100.0))
        before = params[0].copy()
        optimizer.apply([g], params)
        step = np.abs(before - params[0])
        seen = step > 1e-9  # elements whose step is resolved well above float64 rounding of p
        effective = step[seen] / np.abs(g[seen])
        assert np.all(effective <= previous[seen] * (1 + 1e-6)), (effective, previous[seen])
        previous[seen] = effective
        measured += seen.sum()
    assume(measured > 4)


@given(p=fst.real_arrays((7,)), lr=st.floats(0.0, 10.0))
def test_zero_gradients_leave_plain_sgd_unchanged(p, lr):
    params = [p.copy()]
    fd.optimizers.SGD(learning_rate=lr).apply([np.zeros(7)], params)
    np.testing.assert_array_equal(params[0], p)


# Learning rates at which each rule is stable on the quadratic below (curvatures in [0.5, 2]).
QUADRATIC_RULES = {
    "sgd": {"learning_rate": 0.1},
    "momentum": {"learning_rate": 0.1, "momentum": 0.9},
    "nag": {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
    "adagrad": {},
    "rmsprop": {},
    "adadelta": {},
    "adam": {},
}


@pytest.mark.parametrize("name", sorted(QUADRATIC_RULES))
@given(data=st.data())
def test_every_rule_decreases_a_convex_quadratic(name, data):
    curvature = data.draw(fst.gradient_arrays((6,), low=0.5, high=2.0).map(np.abs))
    center = data.draw(fst.real_arrays((6,), extreme=10.0))
    start = data.draw(fst.real_arrays((6,), extreme=10.0))
    assume(np.sum(curvature * (start - center) ** 2) > 1e-3)
    hyper = QUADRATIC_RULES[name]
    optimizer = fd.optimizers.SGD(**hyper) if name in ("momentum", "nag") else fd.optimizers.get({"name": name, **hyper})

    def value(p):
        return 0.5 * np.sum(curvature * (p - center) ** 2)

    params = [start.copy()]
    for _ in range(20):
        optimizer.apply([curvature * (params[0] - center)], params)
    assert value(params[0]) < value(start)


# -- layers: every registered layer, configurations drawn from its argument space --------------------

LAYER_SPACES = spaces.spaces()
LAYER_PROPERTIES = settings(max_examples=max(4, settings().max_examples // 25), deadline=None)


@pytest.mark.parametrize("name", sorted(LAYER_SPACES))
@LAYER_PROPERTIES
@given(data=st.data())
def test_layer_properties(name, data):
    """Shapes as declared, finite outputs (inputs up to 100 in size), each row's inference output
    independent of the rest of the batch, and float32 within tolerance of float64 (on inputs of size 1:
    cells with unbounded gates rightly overflow float32 from inputs of 100)."""
    space = LAYER_SPACES[name]
    config = spaces.configuration(space, data.draw)
    case = spaces.ConfigCase(name, f"layer:{name}", name, config, space, data.draw(st.integers(0, 2**31 - 1)))
    cls, x, layer = case.setup()
    xs = x if isinstance(x, list) else [x]  # a merge layer takes a list of inputs

    def as_input(arrays):
        return arrays if isinstance(x, list) else arrays[0]

    floating = all(a.dtype.kind == "f" for a in xs)
    scale = data.draw(st.sampled_from([1.0, 100.0])) if floating else 1.0
    xs = [a * scale for a in xs] if floating else xs
    n = xs[0].shape[0]
    for training in (True, False):
        y = np.array(layer.forward(as_input(xs), training=training))
        assert y.shape == (n, *layer.output_shape)
        assert np.all(np.isfinite(y)), (config, training)
    for i in range(n):  # inference: a row's output does not depend on the other rows
        np.testing.assert_allclose(layer.forward(as_input([a[i : i + 1] for a in xs]), training=False)[0], y[i], rtol=1e-10, atol=1e-12)
    if scale != 1.0:
        return
    single = spaces.build_layer(cls, space, config, x, np.float32)
    for key, value in layer.params.items():
        single.params[key][...] = value
    for key, value in getattr(layer, "state", {}).items():
        single.state[key][...] = value
    y32 = single.forward(as_input(xs if not floating else [a.astype(np.float32) for a in xs]), training=False)
    assert y32.dtype == np.float32
    # the parameters and inputs are rounded to float32 too: the float64 run is of the unrounded ones
    np.testing.assert_allclose(y32, y, rtol=spaces.FLOAT32_RTOL * 10, atol=spaces.FLOAT32_ATOL * 10, err_msg=str(config))
