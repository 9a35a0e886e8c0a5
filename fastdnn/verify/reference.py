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


# -- convolution and pooling (channels last): direct loops over output positions ---------------------


def padding_amounts(length, size, stride, dilation, padding):
    """``(before, after, output length)`` of one spatial axis, by Keras's rules.

    ``valid``: no padding, ``out = floor((L - eff) / s) + 1`` with ``eff = (size - 1) d + 1``;
    ``same``: ``out = ceil(L / s)``, total padding ``max((out - 1) s + eff - L, 0)``, the smaller half
    before; ``causal``: ``eff - 1`` before, nothing after.
    """
    eff = (size - 1) * dilation + 1
    if padding == "valid":
        return 0, 0, (length - eff) // stride + 1
    if padding == "causal":
        return eff - 1, 0, (length - 1) // stride + 1
    out = -(-length // stride)
    total = max((out - 1) * stride + eff - length, 0)
    return total // 2, total - total // 2, out


def conv_forward(x, K, b, strides=(1, 1), padding="valid", dilation=(1, 1), name="linear", **params):
    """``(z, y)`` of a 2-D convolution: ``z[b, oy, ox, f] = sum_{i, j, c} xp[b, oy sh + i dh, ox sw + j dw, c]
    K[i, j, c, f] + b[f]``, ``xp`` the zero-padded input; ``y = f(z)``. ``b`` may be None.
    """
    x = np.asarray(x, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    kh, kw, _, F = K.shape
    (pt, pb, oh), (pl, pr, ow) = (
        padding_amounts(x.shape[1], kh, strides[0], dilation[0], padding),
        padding_amounts(x.shape[2], kw, strides[1], dilation[1], padding),
    )
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    z = np.zeros((x.shape[0], oh, ow, F))
    for oy in range(oh):
        for ox in range(ow):
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, oy * strides[0] + i * dilation[0], ox * strides[1] + j * dilation[1], :]
                    z[:, oy, ox, :] += patch @ K[i, j]
    if b is not None:
        z = z + np.asarray(b, dtype=np.float64)
    return z, activation(name, z, **params)


def conv_backward(x, K, b, dLdY, strides=(1, 1), padding="valid", dilation=(1, 1), name="linear", **params):
    """``(dL/dx, dL/dK, dL/db)`` of `conv_forward`, accumulated tap by tap into the padded input."""
    x = np.asarray(x, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    kh, kw, _, _ = K.shape
    z, _ = conv_forward(x, K, b, strides, padding, dilation, name, **params)
    g = activation_backward(name, z, dLdY, **params)
    (pt, pb, oh), (pl, pr, ow) = (
        padding_amounts(x.shape[1], kh, strides[0], dilation[0], padding),
        padding_amounts(x.shape[2], kw, strides[1], dilation[1], padding),
    )
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    dxp = np.zeros_like(xp)
    dK = np.zeros_like(K)
    for oy in range(oh):
        for ox in range(ow):
            for i in range(kh):
                for j in range(kw):
                    r, c = oy * strides[0] + i * dilation[0], ox * strides[1] + j * dilation[1]
                    dK[i, j] += xp[:, r, c, :].T @ g[:, oy, ox, :]
                    dxp[:, r, c, :] += g[:, oy, ox, :] @ K[i, j].T
    dX = dxp[:, pt : pt + x.shape[1], pl : pl + x.shape[2], :]
    return dX, dK, g.sum(axis=(0, 1, 2))


def _pool_windows(shape, pool, strides, padding):
    """Yield ``(oy, ox, rows, cols)``: the input ranges (clipped to the input) of every output window."""
    _, H, W, _ = shape
    (pt, _, oh), (pl, _, ow) = (
        padding_amounts(H, pool[0], strides[0], 1, padding),
        padding_amounts(W, pool[1], strides[1], 1, padding),
    )
    for oy in range(oh):
        for ox in range(ow):
            r0, c0 = oy * strides[0] - pt, ox * strides[1] - pl
            yield oy, ox, range(max(r0, 0), min(r0 + pool[0], H)), range(max(c0, 0), min(c0 + pool[1], W))


def pool_output_shape(shape, pool, strides, padding):
    n, H, W, C = shape
    oh = padding_amounts(H, pool[0], strides[0], 1, padding)[2]
    ow = padding_amounts(W, pool[1], strides[1], 1, padding)[2]
    return n, oh, ow, C


def max_pool(x, pool, strides, padding="valid"):
    """Maximum over each window; padded positions take no part."""
    x = np.asarray(x, dtype=np.float64)
    y = np.empty(pool_output_shape(x.shape, pool, strides, padding))
    for oy, ox, rows, cols in _pool_windows(x.shape, pool, strides, padding):
        y[:, oy, ox, :] = x[:, rows.start : rows.stop, cols.start : cols.stop, :].max(axis=(1, 2))
    return y


def max_pool_backward(x, dLdY, pool, strides, padding="valid"):
    """Each output's gradient goes to its window's first maximum (row-major order in the window)."""
    x = np.asarray(x, dtype=np.float64)
    dX = np.zeros_like(x)
    for oy, ox, rows, cols in _pool_windows(x.shape, pool, strides, padding):
        window = x[:, rows.start : rows.stop, cols.start : cols.stop, :]
        n, h, w, C = window.shape
        flat = window.reshape(n, h * w, C).argmax(axis=1)  # argmax returns the first maximum
        for b in range(n):
            for c in range(C):
                r, q = divmod(int(flat[b, c]), w)
                dX[b, rows.start + r, cols.start + q, c] += dLdY[b, oy, ox, c]
    return dX


def avg_pool(x, pool, strides, padding="valid"):
    """Mean over the real (unpadded) positions of each window."""
    x = np.asarray(x, dtype=np.float64)
    y = np.empty(pool_output_shape(x.shape, pool, strides, padding))
    for oy, ox, rows, cols in _pool_windows(x.shape, pool, strides, padding):
        y[:, oy, ox, :] = x[:, rows.start : rows.stop, cols.start : cols.stop, :].mean(axis=(1, 2))
    return y


def avg_pool_backward(x, dLdY, pool, strides, padding="valid"):
    dX = np.zeros(np.shape(x))
    for oy, ox, rows, cols in _pool_windows(dX.shape, pool, strides, padding):
        count = len(rows) * len(cols)
        dX[:, rows.start : rows.stop, cols.start : cols.stop, :] += dLdY[:, oy, ox, None, None, :] / count
    return dX


def global_pool(kind, x):
    """Max or mean over every axis between the batch and the channels."""
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(range(1, x.ndim - 1))
    return x.max(axis=axes) if kind == "max" else x.mean(axis=axes)


def global_pool_backward(kind, x, dLdY):
    x = np.asarray(x, dtype=np.float64)
    n, C = x.shape[0], x.shape[-1]
    flat = x.reshape(n, -1, C)
    if kind == "average":
        dX = np.broadcast_to(dLdY[:, None, :] / flat.shape[1], flat.shape).copy()
    else:
        dX = np.zeros_like(flat)
        where = flat.argmax(axis=1)
        for b in range(n):
            dX[b, where[b], np.arange(C)] = dLdY[b]
    return dX.reshape(x.shape)


# -- dropout, embedding, batch normalization ---------------------------------------------------------


def dropout(x, uniform, rate):
    """Inverted dropout from uniform draws: keep where ``u >= rate``, scaled by ``1 / (1 - rate)``.

    Returns ``(y, mask)``; the backward pass is ``dL/dy * mask``.
    """
    mask = np.where(np.asarray(uniform) >= rate, 1.0 / (1.0 - rate), 0.0)
    return np.asarray(x, dtype=np.float64) * mask, mask


_WORD = (1 << 64) - 1


def _splitmix64_output(z):
    """SplitMix64's output function on a Python integer taken modulo 2^64 (Steele, Lea, Flood 2014)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _WORD
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _WORD
    return z ^ (z >> 31)


def counter_uniform(key, step, first, count):
    """The uniform numbers of a counter-based dropout stream: elements ``first .. first + count - 1``
    of step ``step`` of key ``key``, each the top 53 bits of a SplitMix64 hash (Python integers)::

        word = mix(key ^ mix(step));   u_i = mix(word + i * 0x9E3779B97F4A7C15 mod 2^64) // 2^11 / 2^53
    """
    word = _splitmix64_output(key ^ _splitmix64_output(step))
    return np.array([(_splitmix64_output((word + i * 0x9E3779B97F4A7C15) & _WORD) >> 11) / 2.0**53 for i in range(first, first + count)])


def embedding(indices, E):
    return np.asarray(E, dtype=np.float64)[np.asarray(indices)]


def embedding_backward(indices, E, dLdY):
    """``dL/dE``: every row's gradient added to the row of its index (repeats accumulate)."""
    dE = np.zeros(np.shape(E))
    indices = np.asarray(indices).reshape(-1)
    np.add.at(dE, indices, np.asarray(dLdY, dtype=np.float64).reshape(indices.size, -1))
    return dE


def batch_norm(x, gamma, beta, epsilon=1e-3, mean=None, var=None):
    """``gamma (x - mu) / sqrt(var + epsilon) + beta`` over the last axis; the batch's own (biased)
    statistics over all other axes unless ``mean`` and ``var`` are given. Returns ``(y, mu, var)``.
    """
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(range(x.ndim - 1))
    mu = x.mean(axis=axes) if mean is None else np.asarray(mean, dtype=np.float64)
    var = x.var(axis=axes) if var is None else np.asarray(var, dtype=np.float64)
    x_hat = (x - mu) / np.sqrt(var + epsilon)
    y = x_hat * (1.0 if gamma is None else gamma) + (0.0 if beta is None else beta)
    return y, mu, var


def batch_norm_backward(x, gamma, dLdY, epsilon=1e-3, mean=None, var=None):
    """``(dL/dx, dL/dgamma, dL/dbeta)``, from the chain rule through ``mu`` and ``var`` when they are the
    batch's (``dL/dx`` then has the two correction terms), else through the affine map alone.
    """
    x = np.asarray(x, dtype=np.float64)
    dLdY = np.asarray(dLdY, dtype=np.float64)
    axes = tuple(range(x.ndim - 1))
    m = x.size // x.shape[-1]
    batch = mean is None
    mu = x.mean(axis=axes) if batch else mean
    v = x.var(axis=axes) if batch else var
    inv_std = 1.0 / np.sqrt(v + epsilon)
    x_hat = (x - mu) * inv_std
    g = 1.0 if gamma is None else gamma
    dx_hat = dLdY * g
    if batch:
        dvar = np.sum(dx_hat * (x - mu), axis=axes) * -0.5 * inv_std**3
        dmu = -np.sum(dx_hat, axis=axes) * inv_std + dvar * np.mean(-2.0 * (x - mu), axis=axes)
        dX = dx_hat * inv_std + dvar * 2.0 * (x - mu) / m + dmu / m
    else:
        dX = dx_hat * inv_std
    return dX, np.sum(dLdY * x_hat, axis=axes), np.sum(dLdY, axis=axes)


# -- recurrent layers: step by step over time, batch-major ---------------------------------------------


def simple_rnn(x, W, U, b, name="tanh", return_sequences=False):
    """``h_t = f(x_t W + h_{t-1} U + b)``, ``h_0 = 0``; the states ``(n, T, units)`` or the last."""
    x = np.asarray(x, dtype=np.float64)
    n, T, _ = x.shape
    h = np.zeros((n, U.shape[0]))
    states = []
    for t in range(T):
        h = activation(name, x[:, t] @ W + h @ U + (0.0 if b is None else b))
        states.append(h)
    return np.stack(states, axis=1) if return_sequences else h


def simple_rnn_backward(x, W, U, b, dLdY, name="tanh", return_sequences=False):
    """``(dL/dx, dL/dW, dL/dU, dL/db)`` by backpropagation through time."""
    x = np.asarray(x, dtype=np.float64)
    n, T, _ = x.shape
    states = simple_rnn(x, W, U, b, name, return_sequences=True)
    previous = np.concatenate([np.zeros((n, 1, U.shape[0])), states[:, :-1]], axis=1)
    z = np.einsum("ntd,du->ntu", x, W) + np.einsum("ntu,uv->ntv", previous, U) + (0.0 if b is None else b)
    dX, dW, dU, db = np.zeros_like(x), np.zeros_like(W), np.zeros_like(U), np.zeros(U.shape[0])
    dh = np.zeros((n, U.shape[0]))
    for t in reversed(range(T)):
        if return_sequences:
            dh = dh + dLdY[:, t]
        elif t == T - 1:
            dh = dh + dLdY
        dz = activation_backward(name, z[:, t], dh)
        dW += x[:, t].T @ dz
        dU += previous[:, t].T @ dz
        db += dz.sum(axis=0)
        dX[:, t] = dz @ W.T
        dh = dz @ U.T
    return dX, dW, dU, db


def lstm(x, W, U, b, activation_name="tanh", recurrent_name="sigmoid", return_sequences=False):
    """Keras's LSTM, gates i, f, c, o: ``c_t = f c_{t-1} + i g``, ``h_t = o f(c_t)``.

    Returns the outputs and, for the backward pass, a list of per-step values.
    """
    x = np.asarray(x, dtype=np.float64)
    n, T, _ = x.shape
    units = U.shape[0]
    h, c = np.zeros((n, units)), np.zeros((n, units))
    outputs, steps = [], []
    for t in range(T):
        a = x[:, t] @ W + h @ U + (0.0 if b is None else b)
        ai, af, ag, ao = np.split(a, 4, axis=1)
        i, f, o = (activation(recurrent_name, v) for v in (ai, af, ao))
        g = activation(activation_name, ag)
        c_new = f * c + i * g
        h_new = o * activation(activation_name, c_new)
        steps.append(dict(h_prev=h, c_prev=c, ai=ai, af=af, ag=ag, ao=ao, i=i, f=f, g=g, o=o, c=c_new))
        h, c = h_new, c_new
        outputs.append(h)
    return (np.stack(outputs, axis=1) if return_sequences else h), steps


def lstm_backward(x, W, U, b, dLdY, activation_name="tanh", recurrent_name="sigmoid", return_sequences=False):
    """``(dL/dx, dL/dW, dL/dU, dL/db)`` of `lstm` by backpropagation through time."""
    x = np.asarray(x, dtype=np.float64)
    n, T, _ = x.shape
    _, steps = lstm(x, W, U, b, activation_name, recurrent_name)
    units = U.shape[0]
    dX, dW, dU, db = np.zeros_like(x), np.zeros_like(W), np.zeros_like(U), np.zeros(4 * units)
    dh, dc = np.zeros((n, units)), np.zeros((n, units))
    for t in reversed(range(T)):
        s = steps[t]
        if return_sequences:
            dh = dh + dLdY[:, t]
        elif t == T - 1:
            dh = dh + dLdY
        squashed = activation(activation_name, s["c"])
        do = dh * squashed
        dc = dc + activation_backward(activation_name, s["c"], dh * s["o"])
        da = np.concatenate(
            [
                activation_backward(recurrent_name, s["ai"], dc * s["g"]),
                activation_backward(recurrent_name, s["af"], dc * s["c_prev"]),
                activation_backward(activation_name, s["ag"], dc * s["i"]),
                activation_backward(recurrent_name, s["ao"], do),
            ],
            axis=1,
        )
        dW += x[:, t].T @ da
        dU += s["h_prev"].T @ da
        db += da.sum(axis=0)
        dX[:, t] = da @ W.T
        dh = da @ U.T
        dc = dc * s["f"]
    return dX, dW, dU, db


def gru(x, W, U, b, activation_name="tanh", recurrent_name="sigmoid", return_sequences=False):
    """Keras 3's GRU (``reset_after=True``), gates z, r, h, ``b`` of shape (2, 3 units) or None::

        u = x_t W + b_0;  v = h U + b_1;  z = s(u_z + v_z);  r = s(u_r + v_r)
        hh = f(u_h + r v_h);  h_t = z h_{t-1} + (1 - z) hh
    """
    x = np.asarray(x, dtype=np.float64)
    n, T, _ = x.shape
    units = U.shape[0]
    b_in, b_rec = (0.0, 0.0) if b is None else (b[0], b[1])
    h = np.zeros((n, units))
    outputs, steps = [], []
    for t in range(T):
        uz, ur, uh = np.split(x[:, t] @ W + b_in, 3, axis=1)
        vz, vr, vh = np.split(h @ U + b_rec, 3, axis=1)
        z = activation(recurrent_name, uz + vz)
        r = activation(recurrent_name, ur + vr)
        ah = uh + r * vh
        hh = activation(activation_name, ah)
        steps.append(dict(h_prev=h, az=uz + vz, ar=ur + vr, ah=ah, z=z, r=r, hh=hh, vh=vh))
        h = z * h + (1.0 - z) * hh
        outputs.append(h)
    return (np.stack(outputs, axis=1) if return_sequences else h), steps


def gru_backward(x, W, U, b, dLdY, activation_name="tanh", recurrent_name="sigmoid", return_sequences=False):
    """``(dL/dx, dL/dW, dL/dU, dL/db)`` of `gru` by backpropagation through time (``dL/db`` (2, 3 units))."""
    x = np.asarray(x, dtype=np.float64)
    n, T, _ = x.shape
    _, steps = gru(x, W, U, b, activation_name, recurrent_name)
    units = U.shape[0]
    dX, dW, dU, db = np.zeros_like(x), np.zeros_like(W), np.zeros_like(U), np.zeros((2, 3 * units))
    dh = np.zeros((n, units))
    for t in reversed(range(T)):
        s = steps[t]
        if return_sequences:
            dh = dh + dLdY[:, t]
        elif t == T - 1:
            dh = dh + dLdY
        dah = activation_backward(activation_name, s["ah"], dh * (1.0 - s["z"]))
        daz = activation_backward(recurrent_name, s["az"], dh * (s["h_prev"] - s["hh"]))
        dar = activation_backward(recurrent_name, s["ar"], dah * s["vh"])
        du = np.concatenate([daz, dar, dah], axis=1)
        dv = np.concatenate([daz, dar, dah * s["r"]], axis=1)
        dW += x[:, t].T @ du
        dU += s["h_prev"].T @ dv
        db[0] += du.sum(axis=0)
        db[1] += dv.sum(axis=0)
        dX[:, t] = du @ W.T
        dh = dh * s["z"] + dv @ U.T
    return dX, dW, dU, db


# -- merge layers: forward and the gradient of every input ---------------------------------------------


def merge(kind, xs):
    """Elementwise merge of equal-shaped arrays: add, subtract, multiply, average, maximum, minimum."""
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    if kind == "add":
        return np.sum(xs, axis=0)
    if kind == "subtract":
        return xs[0] - xs[1]
    if kind == "multiply":
        return np.prod(xs, axis=0)
    if kind == "average":
        return np.mean(xs, axis=0)
    return (np.max if kind == "maximum" else np.min)(xs, axis=0)


def merge_backward(kind, xs, dLdY):
    """``[dL/dx_i]`` of `merge`; for maximum/minimum the first input holding the extreme gets it."""
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    g = np.asarray(dLdY, dtype=np.float64)
    k = len(xs)
    if kind == "add":
        return [g.copy() for _ in xs]
    if kind == "subtract":
        return [g.copy(), -g]
    if kind == "average":
        return [g / k for _ in xs]
    if kind == "multiply":
        return [g * np.prod([x for j, x in enumerate(xs) if j != i], axis=0) for i in range(k)]
    winner = (np.argmax if kind == "maximum" else np.argmin)(np.stack(xs), axis=0)  # first index on ties
    return [np.where(winner == i, g, 0.0) for i in range(k)]


def concatenate(xs, axis):
    return np.concatenate([np.asarray(x, dtype=np.float64) for x in xs], axis=axis)


def l2_normalize(x, axis, epsilon=1e-12):
    x = np.asarray(x, dtype=np.float64)
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=axis, keepdims=True), epsilon))


def dot(x, y, axes, normalize=False):
    """Keras's ``Dot``: per sample, contract axis ``axes[0]`` of x with ``axes[1]`` of y (batch axis 0);
    the remaining axes of x, then of y; (n, 1) when nothing remains."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ax, ay = (a if a > 0 else nd + a for a, nd in zip(axes, (x.ndim, y.ndim)))
    if normalize:
        x, y = l2_normalize(x, ax), l2_normalize(y, ay)
    out = np.stack([np.tensordot(x[i], y[i], axes=(ax - 1, ay - 1)) for i in range(x.shape[0])])
    return out.reshape(x.shape[0], 1) if out.ndim == 1 else out
