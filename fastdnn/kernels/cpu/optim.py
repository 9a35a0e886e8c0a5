"""Optimizer kernels: one fused pass over flat parameter, gradient and state buffers per rule.

Every step kernel reads each buffer once and writes each updated buffer once, in a single loop,
so a step costs the memory traffic of its state and no more. Update formulas are Keras 3's.
State buffers a rule does not use (RMSprop without momentum, Adam without amsgrad) are passed as
empty arrays and never touched.

Arithmetic stays in the buffers' dtype (callers pass hyperparameters in that dtype; the constant 1 is
a float32, exact in both precisions), so that the float32 loops vectorize at full width, as the
fused optimizers of PyTorch do. Loop-invariant options (nesterov, centered, amsgrad) get loops of
their own rather than a branch per element.

State that decays (momentum, moving averages) is flushed to 0 once it falls below the smallest
normal number of its dtype (`_normal`). Without this, the state of a weight whose gradient stays 0
(a dead ReLU unit) decays into subnormal numbers, and x86 CPUs take a slow path for every
arithmetic operation on one: after one epoch of a 784-512-256-10 MLP at batch 32, 85% of Adam's
momentum was subnormal and its step took 2.2 times as long. A flushed value differs from the
unflushed one by less than the smallest normal number, far below any parameter's rounding.
"""

import math

import numpy as np

from fastdnn.kernels.jit import jit

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


@jit(inline="always")
def _normal(x, tiny):
    """``x``, or 0 if ``|x|`` is below ``tiny`` (the smallest normal number); a NaN stays NaN."""
    return _ZERO if abs(x) < tiny else x


@jit
def sgd_step(p, g, lr):
    """``p -= lr g``."""
    for i in range(p.shape[0]):
        p[i] -= lr * g[i]


@jit
def momentum_step(p, g, m, lr, momentum, nesterov):
    """``m = momentum m - lr g``; ``p += m``, or ``p += momentum m - lr g`` (Nesterov)."""
    tiny = np.finfo(p.dtype).tiny
    if nesterov:
        for i in range(p.shape[0]):
            step = lr * g[i]
            velocity = _normal(momentum * m[i] - step, tiny)
            m[i] = velocity
            p[i] += momentum * velocity - step
    else:
        for i in range(p.shape[0]):
            velocity = _normal(momentum * m[i] - lr * g[i], tiny)
            m[i] = velocity
            p[i] += velocity


@jit
def adagrad_step(p, g, acc, lr, epsilon):
    """``acc += g^2``; ``p -= lr g / sqrt(acc + epsilon)``."""
    for i in range(p.shape[0]):
        grad = g[i]
        total = acc[i] + grad * grad
        acc[i] = total
        p[i] -= lr * grad / math.sqrt(total + epsilon)


@jit
def rmsprop_step(p, g, vel, mom, avg, lr, rho, momentum, epsilon, centered):
    """RMSprop, optionally centered and with (plain) momentum.

    ``vel = rho vel + (1 - rho) g^2``; if centered, ``avg = rho avg + (1 - rho) g`` and the
    denominator is ``sqrt(vel - avg^2 + epsilon)``, else ``sqrt(vel + epsilon)``;
    ``inc = lr g / denominator``; with momentum ``mom = momentum mom + inc; p -= mom``, else ``p -= inc``.
    """
    keep = _ONE - rho
    tiny = np.finfo(p.dtype).tiny
    if centered:
        for i in range(p.shape[0]):
            grad = g[i]
            v = _normal(rho * vel[i] + keep * grad * grad, tiny)
            vel[i] = v
            a = _normal(rho * avg[i] + keep * grad, tiny)
            avg[i] = a
            increment = lr * grad / math.sqrt(v - a * a + epsilon)
            if momentum > 0:
                increment = _normal(increment + momentum * mom[i], tiny)
                mom[i] = increment
            p[i] -= increment
    else:
        for i in range(p.shape[0]):
            grad = g[i]
            v = _normal(rho * vel[i] + keep * grad * grad, tiny)
            vel[i] = v
            increment = lr * grad / math.sqrt(v + epsilon)
            if momentum > 0:
                increment = _normal(increment + momentum * mom[i], tiny)
                mom[i] = increment
            p[i] -= increment


@jit
def adadelta_step(p, g, acc_grad, acc_delta, lr, rho, epsilon):
    """``acc_grad = rho acc_grad + (1 - rho) g^2``;
    ``delta = -sqrt(acc_delta + eps) / sqrt(acc_grad + eps) g``;
    ``acc_delta = rho acc_delta + (1 - rho) delta^2``;  ``p += lr delta``.
    """
    keep = _ONE - rho
    tiny = np.finfo(p.dtype).tiny
    for i in range(p.shape[0]):
        grad = g[i]
        ag = _normal(rho * acc_grad[i] + keep * grad * grad, tiny)
        acc_grad[i] = ag
        delta = -math.sqrt(acc_delta[i] + epsilon) / math.sqrt(ag + epsilon) * grad
        acc_delta[i] = _normal(rho * acc_delta[i] + keep * delta * delta, tiny)
        p[i] += lr * delta


@jit
def adam_step(p, g, m, v, v_hat, alpha, beta_1, beta_2, epsilon, amsgrad):
    """``m += (g - m)(1 - b1)``; ``v += (g^2 - v)(1 - b2)``; (amsgrad: ``v_hat = max(v_hat, v)``);
    ``p -= alpha m / (sqrt(v) + epsilon)`` with ``alpha = lr sqrt(1 - b2^t) / (1 - b1^t)`` from the caller.
    """
    keep_1 = _ONE - beta_1
    keep_2 = _ONE - beta_2
    tiny = np.finfo(p.dtype).tiny
    if amsgrad:
        for i in range(p.shape[0]):
            grad = g[i]
            mi = _normal(m[i] + (grad - m[i]) * keep_1, tiny)
            vi = _normal(v[i] + (grad * grad - v[i]) * keep_2, tiny)
            m[i] = mi
            v[i] = vi
            vh = max(v_hat[i], vi)
            v_hat[i] = vh
            p[i] -= alpha * mi / (math.sqrt(vh) + epsilon)
    else:
        for i in range(p.shape[0]):
            grad = g[i]
            mi = _normal(m[i] + (grad - m[i]) * keep_1, tiny)
            vi = _normal(v[i] + (grad * grad - v[i]) * keep_2, tiny)
            m[i] = mi
            v[i] = vi
            p[i] -= alpha * mi / (math.sqrt(vi) + epsilon)


@jit
def decay_weights(p, factor):
    """Decoupled weight decay, applied before the update as Keras does: ``p -= factor p``."""
    for i in range(p.shape[0]):
        p[i] -= factor * p[i]


@jit
def clip_by_value(g, limit):
    """``g = clip(g, -limit, limit)`` in place."""
    for i in range(g.shape[0]):
        g[i] = min(max(g[i], -limit), limit)


@jit
def clip_segments_by_norm(g, offsets, max_norm):
    """Scale each segment ``g[offsets[k]:offsets[k+1]]`` to L2 norm at most ``max_norm``, in place.

    One segment per variable is Keras's ``clipnorm``; one segment over everything is ``global_clipnorm``.
    """
    for k in range(offsets.shape[0] - 1):
        segment = g[offsets[k] : offsets[k + 1]]  # a view indexed from 0: no wraparound test per element
        total = 0.0
        for i in range(segment.shape[0]):
            total += float(segment[i]) * float(segment[i])
        norm = math.sqrt(total)
        if norm > max_norm:
            scale = max_norm / norm
            for i in range(segment.shape[0]):
                segment[i] *= scale
