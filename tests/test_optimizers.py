import numpy as np
import pytest

import fastdnn as fd
from fastdnn.verify import reference

# (registered rule, reference rule, hyperparameters): defaults and every option.
CONFIGS = [
    ("sgd", "sgd", {}),
    ("sgd", "sgd", {"learning_rate": 0.1, "momentum": 0.9}),
    ("sgd", "sgd", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("adagrad", "adagrad", {}),
    ("adagrad", "adagrad", {"learning_rate": 0.1, "initial_accumulator_value": 0.0, "epsilon": 1e-5}),
    ("rmsprop", "rmsprop", {}),
    ("rmsprop", "rmsprop", {"learning_rate": 0.01, "rho": 0.8, "momentum": 0.5}),
    ("rmsprop", "rmsprop", {"learning_rate": 0.01, "centered": True}),
    ("rmsprop", "rmsprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.3}),
    ("adadelta", "adadelta", {}),
    ("adadelta", "adadelta", {"learning_rate": 1.0, "rho": 0.9}),
    ("adam", "adam", {}),
    ("adam", "adam", {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.9}),
    ("adam", "adam", {"learning_rate": 0.01, "amsgrad": True}),
]
STEPS = 25


def _make(name, hyper):
    return fd.optimizers.get({"name": name, **hyper})


def _reference_run(rule, hyper, p, grads):
    state = {}
    for g in grads:
        p, state = reference.optimizer_step(rule, p, g, state, **hyper)
    return p


@pytest.mark.parametrize("name, rule, hyper", CONFIGS)
def test_flat_step_matches_reference_over_many_steps(name, rule, hyper, rng):
    p0 = rng.normal(size=50)
    grads = [rng.normal(size=50) * rng.uniform(0.1, 10) for _ in range(STEPS)]
    optimizer = _make(name, hyper)
    p = p0.copy()
    optimizer.build(p.size, np.float64)
    for g in grads:
        optimizer.step(p, g.copy())
    np.testing.assert_allclose(p, _reference_run(rule, hyper, p0, grads), rtol=1e-12, atol=1e-13)
    assert optimizer.iterations == STEPS


@pytest.mark.parametrize("name, rule, hyper", CONFIGS)
def test_apply_on_arrays_matches_reference(name, rule, hyper, rng):
    shapes = [(3, 4), (4,), (2, 2, 2)]
    params = [rng.normal(size=s) for s in shapes]
    grads = [[rng.normal(size=s) for s in shapes] for _ in range(STEPS)]
    optimizer = _make(name, hyper)
    originals = [p.copy() for p in params]
    for step in grads:
        optimizer.apply(step, params)
    for i, p0 in enumerate(originals):
        expected = _reference_run(rule, hyper, p0, [step[i] for step in grads])
        np.testing.assert_allclose(params[i], expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name, rule, hyper", CONFIGS)
def test_float32_stays_close_to_float64(name, rule, hyper, rng):
    p0 = rng.normal(size=200)
    grads = [rng.normal(size=200) for _ in range(10)]
    params32 = [p0.astype(np.float32)]
    optimizer = _make(name, hyper)
    for g in grads:
        optimizer.apply([g.astype(np.float32)], params32)
    np.testing.assert_allclose(params32[0], _reference_run(rule, hyper, p0, grads), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, rule, hyper", CONFIGS)
def test_state_decaying_below_the_smallest_normal_becomes_zero(name, rule, hyper, dtype, rng):
    """A weight whose gradient stays 0 (a dead ReLU unit): its momentum and moving averages decay,
    and reach 0 rather than subnormal numbers (every operation on one is slow on x86). A NaN stays NaN."""
    tiny = np.finfo(dtype).tiny
    p0 = rng.normal(size=8).astype(dtype)
    optimizer = _make(name, hyper)
    optimizer.build(p0.size, dtype)
    for state in optimizer.state.values():
        state[:] = tiny * dtype(1.0005)  # one decay by a factor below 0.9995 makes it subnormal
    p, g = p0.copy(), np.zeros_like(p0)
    for _ in range(3):
        optimizer.step(p, g)
    np.testing.assert_array_equal(p, p0)  # a step of (nearly) nothing
    for key, state in optimizer.state.items():
        subnormal = (state != 0) & (np.abs(state) < tiny)
        assert not subnormal.any(), f"{key}: {state[subnormal][:3]} subnormal"
    g[0] = np.nan
    optimizer.step(p, g)
    assert np.isnan(p[0]) and np.isfinite(p[1:]).all()
    for key, state in optimizer.state.items():
        if key != "velocity_hat":  # max(v_hat, NaN) is the rule's business, not the flush's
            assert np.isnan(state[0]), key


def test_compile_names_mean_keras_defaults():
    assert fd.optimizers.get("sgd").get_config() == {"name": "sgd", "learning_rate": 0.01, "momentum": 0.0, "nesterov": False}
    momentum = fd.optimizers.get("momentum")
    assert (momentum.momentum, momentum.nesterov) == (0.9, False)
    for alias in ("nag", "nesterov"):
        nag = fd.optimizers.get(alias)
        assert (nag.momentum, nag.nesterov) == (0.9, True)
    adam = fd.optimizers.get("adam")
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert fd.optimizers.get("adadelta").rho == 0.95
    assert fd.optimizers.get("adagrad").initial_accumulator_value == 0.1
    assert fd.optimizers.get("rmsprop").rho == 0.9


def test_weight_decay_is_decoupled_and_applied_first(rng):
    p0, g = rng.normal(size=10), rng.normal(size=10)
    optimizer = fd.optimizers.SGD(learning_rate=0.1, weight_decay=0.01)
    params = [p0.copy()]
    optimizer.apply([g], params)
    np.testing.assert_allclose(params[0], p0 - 0.1 * 0.01 * p0 - 0.1 * g, rtol=1e-13)


def test_clipping_options(rng):
    g = [np.array([3.0, 4.0]), np.array([0.0, 12.0])]
    cases = {
        "clipnorm": [np.array([0.6, 0.8]), np.array([0.0, 1.0])],
        "global_clipnorm": [np.array([3.0, 4.0]) / 13, np.array([0.0, 12.0]) / 13],
        "clipvalue": [np.array([1.0, 1.0]), np.array([0.0, 1.0])],
    }
    for option, clipped in cases.items():
        params = [np.zeros(2), np.zeros(2)]
        fd.optimizers.SGD(learning_rate=1.0, **{option: 1.0}).apply([x.copy() for x in g], params)
        for p, expected in zip(params, clipped):
            np.testing.assert_allclose(p, -expected, rtol=1e-13, err_msg=option)


def test_apply_leaves_the_callers_gradients_alone():
    g = [np.array([3.0, 4.0])]
    fd.optimizers.SGD(clipnorm=1.0).apply(g, [np.zeros(2)])
    np.testing.assert_array_equal(g[0], [3.0, 4.0])


@pytest.mark.parametrize(
    "factory, error, match",
    [
        (lambda: fd.optimizers.SGD(learning_rate=-0.1), ValueError, r"learning_rate: expected a number in \[0.0, inf\], received -0.1"),
        (lambda: fd.optimizers.SGD(learning_rate=float("nan")), ValueError, "learning_rate: expected a finite number"),
        (lambda: fd.optimizers.SGD(learning_rate="fast"), TypeError, "learning_rate: expected a real number"),
        (lambda: fd.optimizers.SGD(momentum=1.5), ValueError, "momentum: expected a number in"),
        (lambda: fd.optimizers.SGD(momentum=-0.1), ValueError, "momentum"),
        (lambda: fd.optimizers.Adam(beta_1=1.0), ValueError, r"beta_1: expected a number in \[0.0, 1.0\)"),
        (lambda: fd.optimizers.Adam(epsilon=0), ValueError, "epsilon"),
        (lambda: fd.optimizers.RMSprop(rho=2), ValueError, "rho"),
        (lambda: fd.optimizers.Adagrad(initial_accumulator_value=-1), ValueError, "initial_accumulator_value"),
        (lambda: fd.optimizers.SGD(clipnorm=1.0, clipvalue=1.0), ValueError, "at most one of"),
        (lambda: fd.optimizers.SGD(clipnorm=0.0), ValueError, "clipnorm"),
        (lambda: fd.optimizers.get("adamw"), ValueError, "unknown optimizer 'adamw'.*adam"),
        (lambda: fd.optimizers.get(3), TypeError, "optimizer: expected a name"),
    ],
)
def test_invalid_hyperparameters(factory, error, match):
    with pytest.raises(error, match=match):
        factory()


def test_learning_rate_can_be_changed_and_is_validated():
    optimizer = fd.optimizers.Adam()
    optimizer.learning_rate = 0.5
    assert optimizer.learning_rate == 0.5
    with pytest.raises(ValueError, match="learning_rate"):
        optimizer.learning_rate = -1


def test_apply_validates_its_lists():
    optimizer = fd.optimizers.SGD()
    with pytest.raises(ValueError, match="grads: expected a list of 1 arrays"):
        optimizer.apply([], [np.zeros(2)])
    with pytest.raises(ValueError, match=r"grads\[0\]: expected shape \(2,\)"):
        optimizer.apply([np.zeros(3)], [np.zeros(2)])
    with pytest.raises(ValueError, match=r"grads\[0\]: expected finite values"):
        optimizer.apply([np.array([np.nan, 0.0])], [np.zeros(2)])
    with pytest.raises(TypeError, match=r"params\[0\]: expected a float32 or float64 NumPy array"):
        optimizer.apply([np.zeros(2)], [[0.0, 0.0]])
    frozen = np.zeros(2)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        optimizer.apply([np.zeros(2)], [frozen])


def test_hyperparameters_that_overflow_the_training_dtype_are_refused_before_any_step():
    model = fd.Sequential([fd.layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"^learning_rate: 1e\+39 overflows float32, the dtype the model trains in"):
        model.compile(optimizer=fd.optimizers.SGD(1e39), loss="mse")
    with pytest.raises(ValueError, match=r"^clipvalue: 1e\+39 overflows float32"):
        model.compile(optimizer=fd.optimizers.Adam(clipvalue=1e39), loss="mse")
    model.compile(optimizer=fd.optimizers.SGD(0.1), loss="mse")
    with pytest.raises(ValueError, match=r"^learning_rate: 1e\+39 overflows float32"):
        model.optimizer.learning_rate = 1e39  # a callback's new rate, once built
    assert model.optimizer.learning_rate == 0.1
    fd.config.set_floatx("float64")
    try:
        model = fd.Sequential([fd.layers.Dense(2, input_shape=(3,))])
        model.compile(optimizer=fd.optimizers.SGD(1e39), loss="mse")  # fits float64
    finally:
        fd.config.set_floatx("float32")
