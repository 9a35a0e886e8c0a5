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
