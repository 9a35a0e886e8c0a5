"""Optimizer kernels: one fused pass over flat parameter, gradient and state buffers per rule.

Every step kernel reads each buffer once and writes each updated buffer once, in a single loop,
so a step costs the memory traffic of its state and no more. Update formulas are Keras 3's.
State buffers a rule does not use (RMSprop without momentum, Adam without amsgrad) are passed as
empty arrays and never touched. Arithmetic is float64 per element, stored in the buffer's dtype.
"""

import math

from fastdnn.kernels.jit import jit


@jit
def sgd_step(p, g, lr):
    """``p -= lr g``."""
    for i in range(p.shape[0]):
        p[i] -= lr * g[i]


@jit
def momentum_step(p, g, m, lr, momentum, nesterov):
    """``m = momentum m - lr g``; ``p += m``, or ``p += momentum m - lr g`` (Nesterov)."""
    for i in range(p.shape[0]):
        step = lr * g[i]
        velocity = momentum * m[i] - step
        m[i] = velocity
        if nesterov:
            p[i] += momentum * velocity - step
        else:
            p[i] += velocity


@jit
def adagrad_step(p, g, acc, lr, epsilon):
    """``acc += g^2``; ``p -= lr g / sqrt(acc + epsilon)``."""
    for i in range(p.shape[0]):
        grad = float(g[i])
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
    use_momentum = momentum > 0.0
    for i in range(p.shape[0]):
        grad = float(g[i])
        v = rho * vel[i] + (1.0 - rho) * grad * grad
        vel[i] = v
        if centered:
            a = rho * avg[i] + (1.0 - rho) * grad
            avg[i] = a
            denominator = v - a * a + epsilon
        else:
            denominator = v + epsilon
        increment = lr * grad / math.sqrt(denominator)
        if use_momentum:
            step = momentum * mom[i] + increment
            mom[i] = step
            p[i] -= step
        else:
            p[i] -= increment


@jit
def adadelta_step(p, g, acc_grad, acc_delta, lr, rho, epsilon):
    """``acc_grad = rho acc_grad + (1 - rho) g^2``;
    ``delta = -sqrt(acc_delta + eps) / sqrt(acc_grad + eps) g``;
    ``acc_delta = rho acc_delta + (1 - rho) delta^2``;  ``p += lr delta``.
    """
    for i in range(p.shape[0]):
        grad = float(g[i])
        ag = rho * acc_grad[i] + (1.0 - rho) * grad * grad
        acc_grad[i] = ag
        delta = -math.sqrt(acc_delta[i] + epsilon) / math.sqrt(ag + epsilon) * grad
        acc_delta[i] = rho * acc_delta[i] + (1.0 - rho) * delta * delta
        p[i] += lr * delta


@jit
def adam_step(p, g, m, v, v_hat, alpha, beta_1, beta_2, epsilon, amsgrad):
    """``m += (g - m)(1 - b1)``; ``v += (g^2 - v)(1 - b2)``; (amsgrad: ``v_hat = max(v_hat, v)``);
    ``p -= alpha m / (sqrt(v) + epsilon)`` with ``alpha = lr sqrt(1 - b2^t) / (1 - b1^t)`` from the caller.
    """
    for i in range(p.shape[0]):
        grad = float(g[i])
        mi = m[i] + (grad - m[i]) * (1.0 - beta_1)
        vi = v[i] + (grad * grad - v[i]) * (1.0 - beta_2)
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = max(float(v_hat[i]), vi)
            v_hat[i] = vi
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
        g[i] = min(max(float(g[i]), -limit), limit)


@jit
def clip_segments_by_norm(g, offsets, max_norm):
    """Scale each segment ``g[offsets[k]:offsets[k+1]]`` to L2 norm at most ``max_norm``, in place.

    One segment per variable is Keras's ``clipnorm``; one segment over everything is ``global_clipnorm``.
    """
    for k in range(offsets.shape[0] - 1):
        start = offsets[k]
        stop = offsets[k + 1]
        total = 0.0
        for i in range(start, stop):
            total += float(g[i]) * float(g[i])
        norm = math.sqrt(total)
        if norm > max_norm:
            scale = max_norm / norm
            for i in range(start, stop):
                g[i] *= scale
