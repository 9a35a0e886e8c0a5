import math

import numpy as np
import pytest

import fastdnn as fd

SHAPE = (400, 300)
FAN_IN, FAN_OUT = SHAPE


@pytest.mark.parametrize(
    "name, limit",
    [
        ("glorot_uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))),
        ("he_uniform", math.sqrt(6 / FAN_IN)),
        ("lecun_uniform", math.sqrt(3 / FAN_IN)),
    ],
)
def test_uniform_variance_scaling_limits(name, limit):
    w = fd.initializers.get(name)(SHAPE)
    assert w.dtype == np.float32 and w.shape == SHAPE
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit
    assert w.std() == pytest.approx(limit / math.sqrt(3), rel=0.02)


@pytest.mark.parametrize(
    "name, stddev",
    [
        ("glorot_normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
        ("he_normal", math.sqrt(2 / FAN_IN)),
        ("lecun_normal", math.sqrt(1 / FAN_IN)),
    ],
)
def test_truncated_normal_variance_scaling(name, stddev):
    w = fd.initializers.get(name)(SHAPE, dtype="float64")
    # Truncation at two (pre-correction) standard deviations, variance preserved by the correction.
    assert np.abs(w).max() <= 2 * stddev / 0.87962566103423978 + 1e-12
    assert w.std() == pytest.approx(stddev, rel=0.02)
    assert abs(w.mean()) < 0.02 * stddev


def test_simple_initializers():
    assert np.all(fd.initializers.get("zeros")((3, 2)) == 0)
    assert np.all(fd.initializers.get("ones")((3,)) == 1)
    assert np.all(fd.initializers.Constant(2.5)((2,)) == 2.5)
    normal = fd.initializers.RandomNormal(mean=1.0, stddev=0.5)((200, 200), dtype="float64")
    assert normal.mean() == pytest.approx(1.0, abs=0.01) and normal.std() == pytest.approx(0.5, rel=0.02)
    uniform = fd.initializers.RandomUniform(-2, 3)((200, 200), dtype="float64")
    assert uniform.min() >= -2 and uniform.max() <= 3 and uniform.mean() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("shape", [(5, 5), (8, 3), (3, 8), (2, 3, 4)])
def test_orthogonal(shape):
    w = fd.initializers.Orthogonal(gain=2.0)(shape, dtype="float64")
    flat = w.reshape(-1, shape[-1])
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(gram.shape[0]), atol=1e-12)


def test_seeded_draws_repeat():
    fd.set_seed(42)
    a = fd.initializers.get("glorot_uniform")((4, 4))
    fd.set_seed(42)
    b = fd.initializers.get("glorot_uniform")((4, 4))
    np.testing.assert_array_equal(a, b)


def test_serialize_round_trip():
    for init in (fd.initializers.get("he_normal"), fd.initializers.RandomNormal(0.5, 0.1), fd.initializers.Orthogonal(3.0)):
        clone = fd.initializers.get(fd.initializers.serialize(init))
        assert type(clone) is type(init) and clone.get_config() == init.get_config()


def test_errors():
    with pytest.raises(ValueError, match="unknown initializer 'glorot'.*glorot_uniform"):
        fd.initializers.get("glorot")
    with pytest.raises(ValueError, match="stddev"):
        fd.initializers.RandomNormal(stddev=-1)
    with pytest.raises(ValueError, match="maxval"):
        fd.initializers.RandomUniform(1, 0)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fd.initializers.Orthogonal()((3,))


# -- every registered initializer and every option, against values computed here --------------------

#: A conv kernel (3, 3, 40, 50): Keras's fans are receptive field x channels, 9 * 40 and 9 * 50.
KERNEL = (3, 3, 40, 50)
KERNEL_FANS = {"fan_in": 360.0, "fan_out": 450.0, "fan_avg": 405.0}
#: Keras's truncation: at two standard deviations of the untruncated normal, whose standard deviation
#: the truncation shrinks by this factor (the variance of N(0, 1) restricted to [-2, 2], square-rooted).
SHRINK = math.sqrt(1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(math.sqrt(2)))


def _expected(kind, scale=1.0, mode="fan_in", distribution="truncated_normal"):
    """(distribution, centre, spread, bound) a variance-scaling draw on KERNEL must show."""
    variance = scale / KERNEL_FANS[mode]
    if distribution == "uniform":
        return "uniform", 0.0, math.sqrt(3 * variance), None
    if distribution == "untruncated_normal":
        return "normal", 0.0, math.sqrt(variance), None
    return "normal", 0.0, math.sqrt(variance), 2 * math.sqrt(variance) / SHRINK


INITIALIZER_OPTIONS = {
    "glorot_uniform": [({}, _expected(None, 1.0, "fan_avg", "uniform"))],
    "glorot_normal": [({}, _expected(None, 1.0, "fan_avg"))],
    "he_uniform": [({}, _expected(None, 2.0, "fan_in", "uniform"))],
    "he_normal": [({}, _expected(None, 2.0, "fan_in"))],
    "lecun_uniform": [({}, _expected(None, 1.0, "fan_in", "uniform"))],
    "lecun_normal": [({}, _expected(None, 1.0, "fan_in"))],
    "variance_scaling": [
        ({"scale": s, "mode": m, "distribution": d}, _expected(None, s, m, d))
        for s, m, d in [(1.0, "fan_in", "truncated_normal"), (3.0, "fan_out", "untruncated_normal"), (0.5, "fan_avg", "uniform"),
                        (2.0, "fan_avg", "truncated_normal"), (1.0, "fan_out", "uniform")]
    ],
    "random_normal": [({}, ("normal", 0.0, 0.05, None)), ({"mean": 1.0, "stddev": 0.3}, ("normal", 1.0, 0.3, None))],
    "truncated_normal": [({}, ("normal", 0.0, 0.05 * SHRINK, 0.1)), ({"mean": -1.0, "stddev": 0.5}, ("normal", -1.0, 0.5 * SHRINK, 1.0))],
    "random_uniform": [({}, ("uniform", 0.0, 0.05, None)), ({"minval": 1.0, "maxval": 4.0}, ("uniform", 2.5, 1.5, None))],
    "uniform": [({}, ("uniform", 0.0, 0.05, None))],
    "zeros": [({}, ("constant", 0.0, 0.0, None))],
    "ones": [({}, ("constant", 1.0, 0.0, None))],
    "constant": [({"value": -2.5}, ("constant", -2.5, 0.0, None))],
    "orthogonal": [({}, ("orthogonal", 1.0, 0.0, None)), ({"gain": 0.5}, ("orthogonal", 0.5, 0.0, None))],
}


def test_every_registered_initializer_has_its_options_listed():
    from fastdnn.verify.spaces import constructor_arguments

    assert set(INITIALIZER_OPTIONS) == set(fd.initializers.registry.names(aliases=True))
    listed = {}  # every constructor argument of each class appears in some listed option (under any of its names)
    for name, options in INITIALIZER_OPTIONS.items():
        cls = fd.initializers.registry.lookup(name)
        listed.setdefault(cls, set()).update(key for kwargs, _ in options for key in kwargs)
    for cls, keys in listed.items():
        assert set(constructor_arguments(cls)) <= keys, cls.__name__


@pytest.mark.parametrize("name, kwargs, expected", [(n, k, e) for n, options in INITIALIZER_OPTIONS.items() for k, e in options])
def test_every_initializer_option_draws_the_stated_distribution(name, kwargs, expected):
    kind, centre, spread, bound = expected
    fd.set_seed(3)
    w = fd.initializers.registry.lookup(name)(**kwargs)(KERNEL, dtype="float64")
    assert w.shape == KERNEL and w.dtype == np.float64
    if kind == "constant":
        assert np.all(w == centre)
    elif kind == "orthogonal":
        flat = w.reshape(-1, KERNEL[-1])  # (360, 50): orthogonal columns of norm gain
        np.testing.assert_allclose(flat.T @ flat, centre**2 * np.eye(KERNEL[-1]), atol=1e-12)
    elif kind == "uniform":
        assert w.min() >= centre - spread and w.max() <= centre + spread
        assert w.max() > centre + 0.99 * spread and w.min() < centre - 0.99 * spread
        assert w.mean() == pytest.approx(centre, abs=0.02 * spread)
        assert w.std() == pytest.approx(spread / math.sqrt(3), rel=0.02)
    else:
        assert w.mean() == pytest.approx(centre, abs=0.03 * spread)
        assert w.std() == pytest.approx(spread, rel=0.02)
        if bound is not None:  # truncated: nothing beyond the bound, and the bound nearly reached
            assert np.abs(w - centre).max() <= bound * (1 + 1e-12) and np.abs(w - centre).max() > 0.95 * bound
