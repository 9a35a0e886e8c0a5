"""Weight initializers with Keras 3's names, formulas and defaults.

Fans follow Keras: for a 2-D kernel ``(fan_in, fan_out)``; for higher ranks the leading axes are
the receptive field, ``fan_in = shape[-2] * prod(shape[:-2])``, ``fan_out = shape[-1] * prod(shape[:-2])``.
Draws come from `fastdnn.random.generator()`, so `fd.set_seed` makes them reproducible.
"""

import math

import numpy as np

from fastdnn import random, validation
from fastdnn.registry import Registry

registry = Registry("initializer")

# Standard deviation of a unit normal truncated to [-2, 2]: dividing by it keeps the variance.
_TRUNCATED_STDDEV = 0.87962566103423978


def compute_fans(shape):
    """``(fan_in, fan_out)`` of a weight shape."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _truncated_normal(shape, mean, stddev):
    """Normal samples redrawn until within two standard deviations of the mean."""
    rng = random.generator()
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return mean + stddev * values


class Initializer:
    """Base class: ``initializer(shape, dtype) -> array``."""

    name = None

    def __call__(self, shape, dtype="float32"):
        shape = tuple(int(dim) for dim in shape)
        return np.asarray(self.sample(shape), dtype=dtype)

    def sample(self, shape):
        raise NotImplementedError

    def get_config(self):
        return {}

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


@registry.register("zeros")
class Zeros(Initializer):
    def sample(self, shape):
        return np.zeros(shape)


@registry.register("ones")
class Ones(Initializer):
    def sample(self, shape):
        return np.ones(shape)


@registry.register("constant")
class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = validation.real_number(value, "value")

    def sample(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


@registry.register("random_normal")
class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05):
        self.mean = validation.real_number(mean, "mean")
        self.stddev = validation.real_number(stddev, "stddev", low=0.0)

    def sample(self, shape):
        return random.generator().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


@registry.register("truncated_normal")
class TruncatedNormal(RandomNormal):
    def sample(self, shape):
        return _truncated_normal(shape, self.mean, self.stddev)


@registry.register("random_uniform", "uniform")
class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval = validation.real_number(minval, "minval")
        self.maxval = validation.real_number(maxval, "maxval")
        if self.maxval < self.minval:
            raise ValueError(f"maxval: expected a value >= minval ({self.minval}), received {self.maxval}")

    def sample(self, shape):
        return random.generator().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


@registry.register("variance_scaling")
class VarianceScaling(Initializer):
    """Samples with variance ``scale / fan`` (fan chosen by ``mode``).

    ``distribution``: ``"truncated_normal"`` (stddev ``sqrt(scale / fan) / 0.8796``, cut at 2 stddev),
    ``"untruncated_normal"``, or ``"uniform"`` (limit ``sqrt(3 scale / fan)``).
    """

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        self.scale = validation.real_number(scale, "scale", low=0.0, low_inclusive=False)
        if mode not in self._MODES:
            raise ValueError(f"mode: expected one of {self._MODES}, received {mode!r}")
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"distribution: expected one of {self._DISTRIBUTIONS}, received {distribution!r}")
        self.mode = mode
        self.distribution = distribution

    def sample(self, shape):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            return _truncated_normal(shape, 0.0, math.sqrt(variance) / _TRUNCATED_STDDEV)
        if self.distribution == "untruncated_normal":
            return random.generator().normal(0.0, math.sqrt(variance), shape)
        limit = math.sqrt(3.0 * variance)
        return random.generator().uniform(-limit, limit, shape)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


def _variance_scaling_preset(name, scale, mode, distribution, doc):
    class Preset(VarianceScaling):
        __doc__ = doc

        def __init__(self):
            super().__init__(scale=scale, mode=mode, distribution=distribution)

        def get_config(self):
            return {}

    Preset.__name__ = Preset.__qualname__ = "".join(part.capitalize() for part in name.split("_"))
    return registry.register(name)(Preset)


GlorotUniform = _variance_scaling_preset(
    "glorot_uniform", 1.0, "fan_avg", "uniform", "Uniform in ``±sqrt(6 / (fan_in + fan_out))``."
)
GlorotNormal = _variance_scaling_preset(
    "glorot_normal", 1.0, "fan_avg", "truncated_normal", "Truncated normal, stddev ``sqrt(2 / (fan_in + fan_out))``."
)
HeUniform = _variance_scaling_preset("he_uniform", 2.0, "fan_in", "uniform", "Uniform in ``±sqrt(6 / fan_in)``.")
HeNormal = _variance_scaling_preset(
    "he_normal", 2.0, "fan_in", "truncated_normal", "Truncated normal, stddev ``sqrt(2 / fan_in)``."
)
LecunUniform = _variance_scaling_preset("lecun_uniform", 1.0, "fan_in", "uniform", "Uniform in ``±sqrt(3 / fan_in)``.")
LecunNormal = _variance_scaling_preset(
    "lecun_normal", 1.0, "fan_in", "truncated_normal", "Truncated normal, stddev ``sqrt(1 / fan_in)``."
)


@registry.register("orthogonal")
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``: QR of a normal matrix, signs fixed by diag(R).

    Higher-rank shapes are flattened to ``(prod(shape[:-1]), shape[-1])`` as Keras does.
    """

    def __init__(self, gain=1.0):
        self.gain = validation.real_number(gain, "gain")

    def sample(self, shape):
        if len(shape) < 2:
            raise ValueError(f"shape: the orthogonal initializer needs at least 2 dimensions, received {shape}")
        rows = math.prod(shape[:-1])
        cols = shape[-1]
        flat = random.generator().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain}


def get(identifier, argument="initializer"):
    """An initializer from a name, an ``Initializer`` instance, or a config dict ``{"name": ..., ...}``."""
    return registry.resolve(identifier, Initializer, "a fastdnn.initializers.Initializer", argument)


def serialize(initializer):
    """``{"name": ..., **config}`` that `get` turns back into an equal initializer."""
    for name, cls in registry.canonical_items():
        if type(initializer) is cls:
            return {"name": name, **initializer.get_config()}
    raise ValueError(f"initializer: {initializer!r} is not a registered initializer class")
