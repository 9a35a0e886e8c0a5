"""Activation functions: a registry of names -> (forward, backward) kernel pairs, usable on arrays.

Each registered activation is an `ActivationFunction`, callable on arrays like Keras's
``keras.activations.relu(x)``, and accepted wherever a layer takes ``activation=``::

    fd.activations.relu(x)
    fd.activations.leaky_relu(x, negative_slope=0.1)
    fd.layers.Dense(64, activation=fd.activations.get("leaky_relu", negative_slope=0.1))

========== ========================================== =====================================
name       f(z)                                       f'(z)
========== ========================================== =====================================
linear     z                                          1
sigmoid    1 / (1 + e^-z)                             y (1 - y)
tanh       tanh z                                     1 - y^2
relu       max(z, 0)                                  [z > 0]
leaky_relu z if z > 0 else s z   (s = 0.2)            1 if z > 0 else s
elu        z if z > 0 else a (e^z - 1)   (a = 1)      1 if z > 0 else a e^z
softplus   log(1 + e^z)                               sigmoid(z)
gelu       z Phi(z) = z/2 (1 + erf(z / sqrt 2))       Phi(z) + z phi(z)
silu       z sigmoid(z)          (alias swish)        s (1 + z (1 - s)),  s = sigmoid(z)
softmax    e^z_j / sum_k e^z_k   (last axis)          dL/dz = y (dL/dy - <dL/dy, y>)
========== ========================================== =====================================
"""

import numpy as np

from fastdnn import config, validation
from fastdnn.kernels.cpu import activation as kernels
from fastdnn.registry import Registry

registry = Registry("activation")


class ActivationFunction:
    """An activation: its kernel code and parameters, callable on arrays.

    Parameters
    ----------
    name : str
        Registered name.
    code : int
        Kernel code (``fastdnn.kernels.cpu.activation``).
    defaults : dict
        Parameter names and default values (``{"negative_slope": 0.2}``); at most one, the slope
        the kernels receive as ``alpha``.
    params : dict, optional
        Values overriding ``defaults``.
    """

    def __init__(self, name, code, defaults=None, params=None):
        self.name = name
        self.code = code
        self.defaults = dict(defaults or {})
        self.params = self._validated_params(params or {})

    def _validated_params(self, params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            accepted = sorted(self.defaults) or "none"
            raise TypeError(f"activation {self.name!r}: unknown argument(s) {sorted(unknown)}; accepted: {accepted}")
        merged = dict(self.defaults)
        for key, value in params.items():
            merged[key] = validation.real_number(value, key, low=0.0)
        return merged

    @property
    def alpha(self):
        """The single scalar parameter the kernels take (0 when the activation has none)."""
        return float(next(iter(self.params.values()), 0.0))

    def alpha_as(self, dtype):
        """``alpha`` in the dtype of the arrays it will meet (kernels keep that dtype throughout)."""
        return np.dtype(dtype).type(self.alpha)

    @property
    def needs_preactivation(self):
        """Whether the backward pass reads ``z`` (otherwise ``y = f(z)`` is enough)."""
        return self.code in kernels.NEEDS_PREACTIVATION

    def with_params(self, **params):
        """A copy with some parameters changed: ``leaky_relu.with_params(negative_slope=0.1)``."""
        return ActivationFunction(self.name, self.code, self.defaults, {**self.params, **params})

    def __call__(self, x, **params):
        """``f(x)`` as a new array (float64 input stays float64, anything else becomes floatx)."""
        function = self.with_params(**params) if params else self
        z = _as_activation_input(x, "x")
        y = np.empty_like(z)
        kernels.activation_forward(function.code, _as_2d(z), function.alpha_as(z.dtype), _as_2d(y))
        return y

    def backward(self, x, dLdY):
        """``dL/dx`` given the input ``x`` and the upstream gradient ``dL/dy`` (same shape)."""
        z = _as_activation_input(x, "x")
        dLdY = validation.float_array(dLdY, "dLdY", z.dtype)
        if dLdY.shape != z.shape:
            raise ValueError(f"dLdY: expected shape {z.shape} (the shape of x), received {dLdY.shape}")
        y = np.empty_like(z)
        alpha = self.alpha_as(z.dtype)
        kernels.activation_forward(self.code, _as_2d(z), alpha, _as_2d(y))
        dLdZ = np.empty_like(z)
        kernels.activation_backward(self.code, _as_2d(z), _as_2d(y), _as_2d(dLdY), alpha, _as_2d(dLdZ))
        return dLdZ

    def get_config(self):
        return {"name": self.name, **self.params}

    def __eq__(self, other):
        return isinstance(other, ActivationFunction) and other.get_config() == self.get_config()

    def __hash__(self):
        return hash((self.name, tuple(sorted(self.params.items()))))

    def __repr__(self):
        arguments = "".join(f", {key}={value!r}" for key, value in self.params.items())
        return f"<activation {self.name}{arguments}>"


def _as_activation_input(x, name):
    dtype = x.dtype if isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64) else config.floatx()
    return validation.float_array(x, name, dtype)


def _as_2d(array):
    """View an (..., d) array as (rows, d): activations act on the last axis."""
    return array.reshape(-1, array.shape[-1])


def _define(name, code, aliases=(), **defaults):
    function = ActivationFunction(name, code, defaults)
    registry.register(name, *aliases)(function)
    return function


linear = _define("linear", kernels.LINEAR)
sigmoid = _define("sigmoid", kernels.SIGMOID)
tanh = _define("tanh", kernels.TANH)
relu = _define("relu", kernels.RELU)
leaky_relu = _define("leaky_relu", kernels.LEAKY_RELU, negative_slope=0.2)
elu = _define("elu", kernels.ELU, alpha=1.0)
softplus = _define("softplus", kernels.SOFTPLUS)
gelu = _define("gelu", kernels.GELU)
silu = _define("silu", kernels.SILU, aliases=("swish",))
softmax = _define("softmax", kernels.SOFTMAX)


def get(identifier, **params):
    """Resolve an activation from a name, ``None`` (linear), a config dict or an `ActivationFunction`.

    ``params`` override the activation's parameters: ``get("leaky_relu", negative_slope=0.1)``.
    """
    if identifier is None:
        function = linear
    elif isinstance(identifier, ActivationFunction):
        function = identifier
    elif isinstance(identifier, dict):
        config_ = dict(identifier)
        function = registry.lookup(config_.pop("name", None), "activation")
        params = {**config_, **params}
    elif isinstance(identifier, str):
        function = registry.lookup(identifier, "activation")
    else:
        raise TypeError(
            f"activation: expected a name ({', '.join(registry.names())}), None, or an activation from "
            f"fastdnn.activations, received {validation.describe(identifier)}; arbitrary Python callables "
            f"cannot run inside the compiled kernels"
        )
    return function.with_params(**params) if params else function
