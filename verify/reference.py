"""The oracle: plain NumPy implementations of every formula fastdnn computes, written from the maths.

Nothing here imports fastdnn. Everything works in float64 on whole arrays, favouring the textbook
form over speed, so that a disagreement with a kernel points at the kernel.
"""

import math

import numpy as np
from scipy import special

EPSILON = 1e-7  # Keras's clip epsilon for probability inputs


# -- activations: forward f(z) and elementwise derivative f'(z) -------------------------------------


def linear(z):
    return np.asarray(z, dtype=np.float64).copy()


def sigmoid(z):
    return special.expit(np.asarray(z, dtype=np.float64))


def tanh(z):
    return np.tanh(np.asarray(z, dtype=np.float64))


def relu(z):
    z = np.asarray(z, dtype=np.float64)
    return np.where(z > 0, z, 0.0)


def leaky_relu(z, negative_slope=0.2):
    z = np.asarray(z, dtype=np.float64)
    return np.where(z > 0, z, negative_slope * z)


def elu(z, alpha=1.0):
    z = np.asarray(z, dtype=np.float64)
    return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0)))


def softplus(z):
    return np.logaddexp(0.0, np.asarray(z, dtype=np.float64))


def gelu(z):
    z = np.asarray(z, dtype=np.float64)
    return 0.5 * z * (1.0 + special.erf(z / math.sqrt(2.0)))


def silu(z):
    z = np.asarray(z, dtype=np.float64)
    return z * special.expit(z)


def softmax(z):
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def derivative(name, z, **params):
    """Elementwise ``f'(z)`` of an activation (not softmax, whose derivative is a Jacobian)."""
    z = np.asarray(z, dtype=np.float64)
    if name == "linear":
        return np.ones_like(z)
    if name == "sigmoid":
        s = special.expit(z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 / np.cosh(z) ** 2
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, params.get("negative_slope", 0.2))
    if name == "elu":
        return np.where(z > 0, 1.0, params.get("alpha", 1.0) * np.exp(np.minimum(z, 0.0)))
    if name == "softplus":
        return special.expit(z)
    if name == "gelu":
        return special.ndtr(z) + z * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    if name == "silu":
        s = special.expit(z)
        return s + z * s * (1.0 - s)
    raise KeyError(name)


ACTIVATIONS = {
    "linear": linear,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "softplus": softplus,
    "gelu": gelu,
    "silu": silu,
    "softmax": softmax,
}


def activation(name, z, **params):
    return ACTIVATIONS[name](z, **params)


def activation_backward(name, z, dLdY, **params):
    """``dL/dz`` for upstream ``dL/dy``; for softmax, the full Jacobian-vector product per row."""
    dLdY = np.asarray(dLdY, dtype=np.float64)
    if name == "softmax":
        y = softmax(z)
        # J_ij = y_i (delta_ij - y_j), applied row by row as an explicit matrix.
        out = np.empty_like(y)
        for index in np.ndindex(y.shape[:-1]):
            row = y[index]
            jacobian = np.diag(row) - np.outer(row, row)
            out[index] = jacobian.T @ dLdY[index]
        return out
    return dLdY * derivative(name, z, **params)


# -- dense --------------------------------------------------------------------------------------------


def dense_forward(x, W, b, name="linear", **params):
    """``(z, y)`` with ``z = x W + b`` and ``y = f(z)``; ``b`` may be None."""
    x = np.asarray(x, dtype=np.float64)
    z = x @ np.asarray(W, dtype=np.float64)
    if b is not None:
        z = z + np.asarray(b, dtype=np.float64)
    return z, activation(name, z, **params)


def dense_backward(x, W, b, dLdY, name="linear", **params):
    """``(dL/dx, dL/dW, dL/db)`` of a Dense layer."""
    x = np.asarray(x, dtype=np.float64)
    z, _ = dense_forward(x, W, b, name, **params)
    dLdZ = activation_backward(name, z, dLdY, **params)
    return dLdZ @ np.asarray(W, dtype=np.float64).T, x.T @ dLdZ, dLdZ.sum(axis=0)


# -- losses: value (mean over batch) and gradient with respect to the predictions --------------------


def _one_hot(labels, width):
    out = np.zeros((len(labels), width))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def loss(name, y_true, y_pred, from_logits=False):
    """Mean loss, Keras's ``sum_over_batch_size`` reduction, for 2-D predictions."""
    p = np.asarray(y_pred, dtype=np.float64)
    if name == "mean_squared_error":
        return np.mean((p - y_true) ** 2)
    if name == "mean_absolute_error":
        return np.mean(np.abs(p - y_true))
    if name == "binary_crossentropy":
        t = np.asarray(y_true, dtype=np.float64)
        if from_logits:
            # -(t log s + (1 - t) log(1 - s)) with log s = -softplus(-z), log(1 - s) = -softplus(z)
            return np.mean(t * np.logaddexp(0.0, -p) + (1.0 - t) * np.logaddexp(0.0, p))
        c = np.clip(p, EPSILON, 1.0 - EPSILON)
        return np.mean(-(t * np.log(c) + (1.0 - t) * np.log(1.0 - c)))
    if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        t = (
            _one_hot(np.asarray(y_true).reshape(-1), p.shape[-1])
            if name.startswith("sparse")
            else np.asarray(y_true, dtype=np.float64)
        )
        if from_logits:
            log_prob = p - special.logsumexp(p, axis=-1, keepdims=True)
        else:
            log_prob = np.log(np.clip(p / p.sum(axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON))
        return np.mean(-(t * log_prob).sum(axis=-1))
    raise KeyError(name)


def loss_gradient(name, y_true, y_pred, from_logits=False):
    """``dL/dy_pred`` of `loss`, derived by hand for each formula."""
    p = np.asarray(y_pred, dtype=np.float64)
    n, d = p.shape
    if name == "mean_squared_error":
        return 2.0 * (p - y_true) / (n * d)
    if name == "mean_absolute_error":
        return np.sign(p - y_true) / (n * d)
    if name == "binary_crossentropy":
        t = np.asarray(y_true, dtype=np.float64)
        if from_logits:
            return (special.expit(p) - t) / (n * d)
        inside = (p >= EPSILON) & (p <= 1.0 - EPSILON)
        return np.where(inside, (p - t) / (p * (1.0 - p)), 0.0) / (n * d)
    if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        t = (
            _one_hot(np.asarray(y_true).reshape(-1), d)
            if name.startswith("sparse")
            else np.asarray(y_true, dtype=np.float64)
        )
        if from_logits:
            return (softmax(p) * t.sum(axis=-1, keepdims=True) - t) / n
        s = p.sum(axis=-1, keepdims=True)
        q = p / s
        inside = (q >= EPSILON) & (q <= 1.0 - EPSILON)
        g = np.where(inside, -t / np.where(inside, q, 1.0), 0.0)  # dL/dq
        # q = p / s: dq_j/dp_k = (delta_jk - q_j) / s
        return (g - (g * q).sum(axis=-1, keepdims=True)) / s / n
    raise KeyError(name)


# -- optimizers: one update step, returning new (params, state) ---------------------------------------


def sgd(p, g, state, learning_rate=0.01, momentum=0.0, nesterov=False):
    if momentum == 0:
        return p - learning_rate * g, state
    m = momentum * state.get("momentum", np.zeros_like(p)) - learning_rate * g
    if nesterov:
        return p + momentum * m - learning_rate * g, {"momentum": m}
    return p + m, {"momentum": m}


def adagrad(p, g, state, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
    acc = state.get("accumulator", np.full_like(p, initial_accumulator_value)) + g * g
    return p - learning_rate * g / np.sqrt(acc + epsilon), {"accumulator": acc}


def rmsprop(p, g, state, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    zeros = np.zeros_like(p)
    v = rho * state.get("velocity", zeros) + (1 - rho) * g * g
    new_state = {"velocity": v}
    if centered:
        a = rho * state.get("average_gradient", zeros) + (1 - rho) * g
        new_state["average_gradient"] = a
        increment = learning_rate * g / np.sqrt(v - a * a + epsilon)
    else:
        increment = learning_rate * g / np.sqrt(v + epsilon)
    if momentum > 0:
        mom = momentum * state.get("momentum", zeros) + increment
        new_state["momentum"] = mom
        return p - mom, new_state
    return p - increment, new_state


def adadelta(p, g, state, learning_rate=0.001, rho=0.95, epsilon=1e-7):
    zeros = np.zeros_like(p)
    eg = rho * state.get("accumulated_grad", zeros) + (1 - rho) * g * g
    ed_old = state.get("accumulated_delta_var", zeros)
    delta = -np.sqrt(ed_old + epsilon) / np.sqrt(eg + epsilon) * g
    ed = rho * ed_old + (1 - rho) * delta * delta
    return p + learning_rate * delta, {"accumulated_grad": eg, "accumulated_delta_var": ed}


def adam(p, g, state, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False):
    """Kingma & Ba with Keras's epsilon placement: ``lr_t m / (sqrt(v) + eps)``, ``lr_t`` bias-corrected."""
    zeros = np.zeros_like(p)
    t = state.get("t", 0) + 1
    m = beta_1 * state.get("momentum", zeros) + (1 - beta_1) * g
    v = beta_2 * state.get("velocity", zeros) + (1 - beta_2) * g * g
    new_state = {"t": t, "momentum": m, "velocity": v}
    if amsgrad:
        v = np.maximum(state.get("velocity_hat", zeros), v)
        new_state["velocity_hat"] = v
    lr_t = learning_rate * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
    return p - lr_t * m / (np.sqrt(v) + epsilon), new_state


OPTIMIZERS = {"sgd": sgd, "adagrad": adagrad, "rmsprop": rmsprop, "adadelta": adadelta, "adam": adam}


def optimizer_step(name, p, g, state, **hyper):
    """One step of rule ``name`` on float64 arrays; ``state`` is a dict (empty at the start)."""
    return OPTIMIZERS[name](np.asarray(p, np.float64), np.asarray(g, np.float64), state, **hyper)


# -- metrics ---------------------------------------------------------------------------------------------


def accuracy(kind, y_true, y_pred, threshold=0.5):
    p = np.asarray(y_pred, dtype=np.float64)
    if kind == "binary":
        return np.mean((p > threshold) == (np.asarray(y_true) > threshold))
    if kind == "sparse":
        return np.mean(p.argmax(axis=-1) == np.asarray(y_true).reshape(-1))
    return np.mean(p.argmax(axis=-1) == np.asarray(y_true).argmax(axis=-1))


def clip_and_decay(params, grads, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
    """Keras's gradient clipping (one option at most) and decoupled weight decay, on lists of arrays.

    Returns ``(params, grads)``: new lists, the inputs untouched.
    """
    grads = [np.asarray(g, dtype=np.float64).copy() for g in grads]
    if clipnorm is not None:
        grads = [g * min(1.0, clipnorm / max(np.linalg.norm(g), 1e-300)) for g in grads]
    elif global_clipnorm is not None:
        total = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
        grads = [g * min(1.0, global_clipnorm / max(total, 1e-300)) for g in grads]
    elif clipvalue is not None:
        grads = [np.clip(g, -clipvalue, clipvalue) for g in grads]
    params = [np.asarray(p, dtype=np.float64) for p in params]
    if weight_decay:
        params = [p - learning_rate * weight_decay * p for p in params]
    return params, grads


_BASE_OPTIONS = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm")


def optimizer_steps(rule, params, grads_per_step, states, **hyper):
    """Run ``rule`` over lists of arrays for every gradient list in ``grads_per_step``.

    ``states`` holds one state dict per array (Adam's step count ``t`` in each). Returns
    ``(params, states)``.
    """
    base = {key: hyper.pop(key) for key in _BASE_OPTIONS if key in hyper}
    learning_rate = hyper.get("learning_rate", {"sgd": 0.01}.get(rule, 0.001))
    params = [np.asarray(p, dtype=np.float64) for p in params]
    for grads in grads_per_step:
        params, grads = clip_and_decay(params, grads, learning_rate, **base)
        stepped = [optimizer_step(rule, p, g, s, **hyper) for p, g, s in zip(params, grads, states)]
        params = [p for p, _ in stepped]
        states = [s for _, s in stepped]
    return params, states
