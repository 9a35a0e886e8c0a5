"""Optimizers: Keras 3's update rules, each ONE fused kernel over flat parameter/gradient/state buffers.

Ordered from simple to complex. In a model, ``step(params, grads)`` updates the model's flat buffers
with a single kernel call (plus one pre-pass only when clipping or weight decay is asked for).
``apply(grads, params)`` updates a list of NumPy arrays in place through exactly the same code, so a
rule can be used, and checked, on its own.

Full-batch gradient descent is `SGD` with ``batch_size=len(x)`` in ``fit``; mini-batch SGD is `SGD`
with a smaller batch; Momentum and Nesterov are `SGD` with ``momentum`` (and ``nesterov=True``).

State that decays (momentum, moving averages of the gradient and its square) becomes 0 once it
falls below the smallest normal number of its dtype, instead of lingering as a subnormal number,
on which x86 CPUs compute slowly (the state of a dead ReLU unit's weights: Adam's step took 2.2
times as long). This differs from the unflushed rule by less than that smallest normal number.
"""

import math

import numpy as np

from fastdnn import validation
from fastdnn.kernels.cpu import optim as kernels
from fastdnn.registry import Registry

registry = Registry("optimizer")


def _check_fits(hyperparameters, scalar):
    """Raise a ValueError naming the first float hyperparameter that ``scalar`` (a NumPy float type)
    cannot hold: it would become infinite in the kernels."""
    for name, value in hyperparameters.items():
        if isinstance(value, float):
            with np.errstate(over="ignore"):
                overflows = not np.isfinite(scalar(value))
            if overflows:
                raise ValueError(
                    f"{name}: {value:g} overflows {np.dtype(scalar).name}, the dtype the model trains in "
                    f"(largest {float(np.finfo(scalar).max):.4g}); use a smaller value or floatx float64"
                )


class Optimizer:
    """Base class: hyperparameters, flat state buffers, gradient clipping and weight decay.

    Parameters
    ----------
    learning_rate : float
        Step size, finite and >= 0.
    weight_decay : float, optional
        Decoupled decay applied before the update: ``p -= learning_rate * weight_decay * p``.
    clipnorm : float, optional
        Clip each variable's gradient to this L2 norm.
    clipvalue : float, optional
        Clip each gradient element to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float, optional
        Clip the gradient of all variables together to this L2 norm. At most one of the three
        clipping options may be set, as in Keras.
    """

    name = None
    #: Names of the state buffers, in order, with the initial value of each.
    state_defaults = {}
    #: The step kernels: the CPU family; a model compiled for ``device="cuda"`` gives its optimizer
    #: the numba.cuda twins (same names and signatures) and device state buffers.
    _kernels = kernels

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        self.learning_rate = learning_rate
        self.weight_decay = _optional_positive(weight_decay, "weight_decay", allow_zero=True)
        self.clipnorm = _optional_positive(clipnorm, "clipnorm")
        self.clipvalue = _optional_positive(clipvalue, "clipvalue")
        self.global_clipnorm = _optional_positive(global_clipnorm, "global_clipnorm")
        chosen = [key for key in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, key) is not None]
        if len(chosen) > 1:
            raise ValueError(f"clipping: expected at most one of clipnorm, clipvalue, global_clipnorm, received {chosen}")
        self.iterations = 0
        self.state = {}
        self._apply_layout = None

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        value = validation.real_number(value, "learning_rate", low=0.0)
        if hasattr(self, "_scalar"):  # built: a new rate must fit the dtype the kernels compute in
            _check_fits({"learning_rate": value}, self._scalar)
        self._learning_rate = value

    # -- state -----------------------------------------------------------------------------------

    def active_state(self):
        """Names of the state buffers this configuration uses."""
        return tuple(self.state_defaults)

    def build(self, size, dtype):
        """Allocate flat state buffers for ``size`` parameters (kept when already the right size).

        Refuses hyperparameters that overflow ``dtype`` (a learning rate of 1e39 is finite in float64
        and infinite in float32), before any kernel runs.
        """
        dtype = np.dtype(dtype)
        _check_fits(self.get_config(), dtype.type)
        names = self.active_state()
        if self.state and all(self.state[k].shape == (size,) and self.state[k].dtype == dtype for k in names):
            return
        self.state = {name: np.full(size, self.state_defaults[name], dtype=dtype) for name in names}
        self.iterations = 0
        self._empty = np.empty(0, dtype=dtype)
        self._whole = np.array([0, size], dtype=np.int64)  # one segment: global_clipnorm
        self._scalar = dtype.type  # kernels compute in the buffers' dtype

    def _buffer(self, name):
        return self.state.get(name, self._empty)

    # -- the step --------------------------------------------------------------------------------

    def step(self, params, grads, offsets=None):
        """Update flat ``params`` in place from flat ``grads`` (trusted: same size and dtype, built).

        ``offsets`` marks where each variable starts (and the end), for ``clipnorm``; ``grads`` is
        modified in place by clipping.
        """
        if self.clipnorm is not None:
            self._kernels.clip_segments_by_norm(grads, self._whole if offsets is None else offsets, self.clipnorm)
        elif self.global_clipnorm is not None:
            self._kernels.clip_segments_by_norm(grads, self._whole, self.global_clipnorm)
        elif self.clipvalue is not None:
            self._kernels.clip_by_value(grads, self._scalar(self.clipvalue))
        if self.weight_decay:
            self._kernels.decay_weights(params, self._scalar(self.learning_rate * self.weight_decay))
        self.update(params, grads)
        self.iterations += 1

    def update(self, params, grads):
        """The rule's fused kernel call."""
        raise NotImplementedError

    def apply(self, grads, params):
        """Update a list of arrays in place, as Keras's ``optimizer.apply(grads, variables)``.

        Parameters
        ----------
        grads : list of arrays
            One gradient per parameter, same shapes; must be finite.
        params : list of arrays
            Writable float32 or float64 arrays of one dtype, updated in place.
        """
        params, grads = self._validated_lists(grads, params)
        offsets, flat_p, flat_g = self.array_layout(params)
        for p, g, start, stop in zip(params, grads, offsets[:-1], offsets[1:]):
            flat_p[start:stop] = p.reshape(-1)
            flat_g[start:stop] = g.reshape(-1)
        self.step(flat_p, flat_g, offsets)
        for p, start, stop in zip(params, offsets[:-1], offsets[1:]):
            p[...] = flat_p[start:stop].reshape(p.shape)

    def array_layout(self, params):
        """``(offsets, flat_params, flat_grads)`` that `apply` packs ``params`` into.

        Built (with fresh state) the first time and whenever the shapes or dtype change; the state
        buffers run over the arrays concatenated in order, so `set_state` can prepare them.
        """
        dtype = params[0].dtype
        key = (tuple(p.shape for p in params), dtype)
        if self._apply_layout is None or self._apply_layout[0] != key:
            offsets = np.concatenate([[0], np.cumsum([p.size for p in params])]).astype(np.int64)
            flat_p = np.empty(int(offsets[-1]), dtype=dtype)
            self._apply_layout = (key, offsets, flat_p, np.empty_like(flat_p))
            self.build(flat_p.shape[0], dtype)
        return self._apply_layout[1:]

    def get_state(self):
        """``{"iterations": t, "buffers": {name: copy of flat state}}``, e.g. for saving."""
        return {"iterations": self.iterations, "buffers": {name: array.copy() for name, array in self.state.items()}}

    def set_state(self, state):
        """Restore what `get_state` returned (the optimizer must be built for the same size)."""
        if not isinstance(state, dict) or "buffers" not in state:
            raise TypeError(f"state: expected a dict like get_state() returns, received {validation.describe(state)}")
        buffers = state["buffers"]
        if set(buffers) != set(self.state):
            raise ValueError(f"state: expected buffers {sorted(self.state)}, received {sorted(buffers)}")
        checked = {}
        for name, array in buffers.items():
            target = self.state[name]
            values = validation.float_array(array, f"state buffer {name!r}", target.dtype, min_ndim=1)
            if values.shape != target.shape:
                raise ValueError(f"state buffer {name!r}: expected shape {target.shape}, received {values.shape}")
            checked[name] = values
        iterations = state.get("iterations", 0)
        if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 0:
            raise ValueError(f"state: expected a non-negative integer iteration count, received {iterations!r}")
        for name, values in checked.items():
            self.state[name][...] = values
        self.iterations = int(iterations)

    def _validated_lists(self, grads, params):
        if not isinstance(params, (list, tuple)) or not params:
            raise TypeError(f"params: expected a non-empty list of arrays, received {validation.describe(params)}")
        if not isinstance(grads, (list, tuple)) or len(grads) != len(params):
            count = len(grads) if isinstance(grads, (list, tuple)) else validation.describe(grads)
            raise ValueError(f"grads: expected a list of {len(params)} arrays (one per parameter), received {count}")
        dtype = None
        for i, p in enumerate(params):
            if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64):
                raise TypeError(f"params[{i}]: expected a float32 or float64 NumPy array, received {validation.describe(p)}")
            if not p.flags.writeable:
                raise ValueError(f"params[{i}]: expected a writable array (it is updated in place), received a read-only one")
            dtype = dtype or p.dtype
            if p.dtype != dtype:
                raise TypeError(f"params[{i}]: expected dtype {dtype} like params[0], received {p.dtype}")
        checked = []
        for i, (g, p) in enumerate(zip(grads, params)):
            g = validation.float_array(g, f"grads[{i}]", dtype, min_ndim=0)
            if np.shape(g) != p.shape:
                raise ValueError(f"grads[{i}]: expected shape {p.shape} (like params[{i}]), received {np.shape(g)}")
            checked.append(g)
        return list(params), checked

    # -- config ----------------------------------------------------------------------------------

    def get_config(self):
        config = {"name": self.name, "learning_rate": self.learning_rate}
        for key in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({arguments})"


def _optional_positive(value, name, allow_zero=False):
    if value is None:
        return None
    return validation.real_number(value, name, low=0.0, low_inclusive=allow_zero)


def _unit_interval(value, name, include_one=True):
    return validation.real_number(value, name, low=0.0, high=1.0, high_inclusive=include_one)


def _epsilon(value):
    return validation.real_number(value, "epsilon", low=0.0, low_inclusive=False)


@registry.register("sgd")
class SGD(Optimizer):
    """Gradient descent, optionally with momentum or Nesterov momentum.

    ``momentum == 0``: ``p -= lr g``. Otherwise ``m = momentum m - lr g`` and ``p += m``, or with
    ``nesterov=True`` ``p += momentum m - lr g``. Full-batch gradient descent is this optimizer with
    ``fit(..., batch_size=len(x))``.
    """

    name = "sgd"
    state_defaults = {"momentum": 0.0}

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _unit_interval(momentum, "momentum")
        self.nesterov = validation.boolean(nesterov, "nesterov")

    def active_state(self):
        return ("momentum",) if self.momentum > 0 else ()

    def update(self, params, grads):
        if self.momentum > 0:
            self._kernels.momentum_step(
                params, grads, self.state["momentum"], self._scalar(self.learning_rate), self._scalar(self.momentum), self.nesterov
            )
        else:
            self._kernels.sgd_step(params, grads, self._scalar(self.learning_rate))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


registry.register("momentum")(lambda: SGD(momentum=0.9))
registry.register("nag", "nesterov")(lambda: SGD(momentum=0.9, nesterov=True))


@registry.register("adagrad")
class Adagrad(Optimizer):
    """``acc += g^2``; ``p -= lr g / sqrt(acc + epsilon)``, with ``acc`` starting at ``initial_accumulator_value``."""

    name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = validation.real_number(
            initial_accumulator_value, "initial_accumulator_value", low=0.0
        )
        self.epsilon = _epsilon(epsilon)
        self.state_defaults = {"accumulator": self.initial_accumulator_value}

    def update(self, params, grads):
        self._kernels.adagrad_step(
            params, grads, self.state["accumulator"], self._scalar(self.learning_rate), self._scalar(self.epsilon)
        )

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


@registry.register("rmsprop")
class RMSprop(Optimizer):
    """Divide the gradient by a running root mean square of recent gradients.

    ``v = rho v + (1 - rho) g^2``; centered: ``a = rho a + (1 - rho) g``, ``den = v - a^2 + eps``,
    else ``den = v + eps``; ``inc = lr g / sqrt(den)``; ``p -= inc``, or with momentum
    ``mom = momentum mom + inc; p -= mom``.
    """

    name = "rmsprop"
    state_defaults = {"velocity": 0.0, "momentum": 0.0, "average_gradient": 0.0}

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = _unit_interval(rho, "rho")
        self.momentum = _unit_interval(momentum, "momentum")
        self.epsilon = _epsilon(epsilon)
        self.centered = validation.boolean(centered, "centered")

    def active_state(self):
        names = ["velocity"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        return tuple(names)

    def update(self, params, grads):
        self._kernels.rmsprop_step(
            params,
            grads,
            self.state["velocity"],
            self._buffer("momentum"),
            self._buffer("average_gradient"),
            self._scalar(self.learning_rate),
            self._scalar(self.rho),
            self._scalar(self.momentum),
            self._scalar(self.epsilon),
            self.centered,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


@registry.register("adadelta")
class Adadelta(Optimizer):
    """Step sizes from running averages of squared gradients and squared updates.

    ``Eg = rho Eg + (1 - rho) g^2``; ``d = -sqrt(Ed + eps) / sqrt(Eg + eps) g``;
    ``Ed = rho Ed + (1 - rho) d^2``; ``p += lr d``.
    """

    name = "adadelta"
    state_defaults = {"accumulated_grad": 0.0, "accumulated_delta_var": 0.0}

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = _unit_interval(rho, "rho")
        self.epsilon = _epsilon(epsilon)

    def update(self, params, grads):
        self._kernels.adadelta_step(
            params,
            grads,
            self.state["accumulated_grad"],
            self.state["accumulated_delta_var"],
            self._scalar(self.learning_rate),
            self._scalar(self.rho),
            self._scalar(self.epsilon),
        )

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


@registry.register("adam")
class Adam(Optimizer):
    """Adaptive moment estimation.

    ``m += (g - m)(1 - b1)``; ``v += (g^2 - v)(1 - b2)``; amsgrad: ``v_hat = max(v_hat, v)``;
    ``p -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + epsilon)`` at step ``t = 1, 2, ...``.
    """

    name = "adam"
    state_defaults = {"momentum": 0.0, "velocity": 0.0, "velocity_hat": 0.0}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _unit_interval(beta_1, "beta_1", include_one=False)
        self.beta_2 = _unit_interval(beta_2, "beta_2", include_one=False)
        self.epsilon = _epsilon(epsilon)
        self.amsgrad = validation.boolean(amsgrad, "amsgrad")

    def active_state(self):
        return ("momentum", "velocity", "velocity_hat") if self.amsgrad else ("momentum", "velocity")

    def update(self, params, grads):
        t = self.iterations + 1
        alpha = self.learning_rate * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        self._kernels.adam_step(
            params,
            grads,
            self.state["momentum"],
            self.state["velocity"],
            self._buffer("velocity_hat"),
            self._scalar(alpha),
            self._scalar(self.beta_1),
            self._scalar(self.beta_2),
            self._scalar(self.epsilon),
            self.amsgrad,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


def get(identifier):
    """An optimizer from a name (with Keras's defaults), a config dict, or an `Optimizer` instance."""
    return registry.resolve(identifier, Optimizer, "a fastdnn.optimizers.Optimizer")
