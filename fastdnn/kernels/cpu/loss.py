"""Loss kernels: each returns the mean loss over the batch and, if ``with_grad``, writes ``dL/dp``.

The reduction is Keras's default: per-sample losses averaged over the batch, where the per-sample
loss of MSE, MAE and binary crossentropy is itself a mean over the last axis. So the gradient of
those three carries a factor ``1 / (n d)``, and of the categorical losses ``1 / n``.

Probability inputs are clipped to ``[EPSILON, 1 - EPSILON]`` as Keras does; the gradient is zero
where the clip is active, which is the exact derivative of the clipped formula. The ``_from_logits``
kernels are the stable forms (log-sum-exp, softplus) and are also what a model uses when the output
layer's softmax or sigmoid is fused with the crossentropy: their gradient with respect to the logits
is simply ``(softmax(z) - t) / n`` or ``(sigmoid(z) - t) / (n d)``.
"""

import math

from fastdnn.kernels.cpu.activation import sigmoid_scalar, softplus_scalar
from fastdnn.kernels.jit import jit

EPSILON = 1e-7


@jit(inline="always")  # a helper of other kernels: no compile of its own on a first run
def log_sum_exp(row):
    """``log(sum(exp(row)))`` computed as ``m + log(sum(exp(row - m)))``, ``m = max(row)``."""
    m = float(row[0])
    for j in range(1, row.shape[0]):
        m = max(m, float(row[j]))
    total = 0.0
    for j in range(row.shape[0]):
        total += math.exp(float(row[j]) - m)
    return m + math.log(total)


@jit
def mean_squared_error(p, t, grad, with_grad):
    """``mean((p - t)^2)``; ``dL/dp = 2 (p - t) / (n d)``."""
    n, d = p.shape
    scale = 1.0 / (n * d)
    total = 0.0
    for i in range(n):
        for j in range(d):
            diff = float(p[i, j]) - float(t[i, j])
            total += diff * diff
            if with_grad:
                grad[i, j] = 2.0 * diff * scale
    return total * scale


@jit
def mean_absolute_error(p, t, grad, with_grad):
    """``mean(|p - t|)``; ``dL/dp = sign(p - t) / (n d)`` (zero at ``p == t``)."""
    n, d = p.shape
    scale = 1.0 / (n * d)
    total = 0.0
    for i in range(n):
        for j in range(d):
            diff = float(p[i, j]) - float(t[i, j])
            total += abs(diff)
            if with_grad:
                if diff > 0.0:
                    grad[i, j] = scale
                elif diff < 0.0:
                    grad[i, j] = -scale
                else:
                    grad[i, j] = 0.0
    return total * scale


@jit
def binary_crossentropy(p, t, grad, with_grad):
    """``mean(-(t log c + (1 - t) log(1 - c)))`` with ``c = clip(p, eps, 1 - eps)``.

    ``dL/dp = (c - t) / (c (1 - c)) / (n d)`` inside the clip range, 0 outside.
    """
    n, d = p.shape
    scale = 1.0 / (n * d)
    lo = EPSILON
    hi = 1.0 - EPSILON
    total = 0.0
    for i in range(n):
        for j in range(d):
            raw = float(p[i, j])
            c = min(max(raw, lo), hi)
            target = float(t[i, j])
            total -= target * math.log(c) + (1.0 - target) * math.log(1.0 - c)
            if with_grad:
                if raw < lo or raw > hi:
                    grad[i, j] = 0.0
                else:
                    grad[i, j] = (c - target) / (c * (1.0 - c)) * scale
    return total * scale


@jit
def binary_crossentropy_from_logits(z, t, grad, with_grad):
    """``mean(softplus(z) - t z)``, which equals BCE of ``sigmoid(z)``; ``dL/dz = (sigmoid(z) - t) / (n d)``."""
    n, d = z.shape
    scale = 1.0 / (n * d)
    total = 0.0
    for i in range(n):
        for j in range(d):
            logit = float(z[i, j])
            target = float(t[i, j])
            total += softplus_scalar(logit) - target * logit
            if with_grad:
                grad[i, j] = (sigmoid_scalar(logit) - target) * scale
    return total * scale


@jit
def categorical_crossentropy(p, t, grad, with_grad):
    """Keras's formula on probabilities: ``q = p / sum(p)``, ``c = clip(q)``, ``L = -sum t log c``.

    With ``g_j = -t_j / c_j`` where unclipped (else 0): ``dL/dp_k = (g_k - sum_j g_j q_j) / sum(p)``,
    the chain rule through the normalisation; all divided by ``n``.
    """
    n, d = p.shape
    scale = 1.0 / n
    lo = EPSILON
    hi = 1.0 - EPSILON
    total = 0.0
    for i in range(n):
        row_sum = 0.0
        for j in range(d):
            row_sum += float(p[i, j])
        inner = 0.0
        for j in range(d):
            q = float(p[i, j]) / row_sum
            c = min(max(q, lo), hi)
            target = float(t[i, j])
            total -= target * math.log(c)
            if with_grad:
                g = 0.0 if (q < lo or q > hi) else -target / c
                grad[i, j] = g
                inner += g * q
        if with_grad:
            for j in range(d):
                grad[i, j] = (grad[i, j] - inner) / row_sum * scale
    return total * scale


@jit
def categorical_crossentropy_from_logits(z, t, grad, with_grad):
    """``L = sum_j t_j (lse(z) - z_j)``; ``dL/dz_j = (softmax(z)_j sum(t) - t_j) / n``."""
    n, d = z.shape
    scale = 1.0 / n
    total = 0.0
    for i in range(n):
        lse = log_sum_exp(z[i])
        t_sum = 0.0
        for j in range(d):
            target = float(t[i, j])
            t_sum += target
            total += target * (lse - float(z[i, j]))
        if with_grad:
            for j in range(d):
                prob = math.exp(float(z[i, j]) - lse)
                grad[i, j] = (prob * t_sum - float(t[i, j])) * scale
    return total * scale


@jit
def sparse_categorical_crossentropy(p, labels, grad, with_grad):
    """Categorical crossentropy of probabilities against integer ``labels`` (Keras's formula)."""
    n, d = p.shape
    scale = 1.0 / n
    lo = EPSILON
    hi = 1.0 - EPSILON
    total = 0.0
    for i in range(n):
        k = labels[i]
        row_sum = 0.0
        for j in range(d):
            row_sum += float(p[i, j])
        q = float(p[i, k]) / row_sum
        c = min(max(q, lo), hi)
        total -= math.log(c)
        if with_grad:
            # g is nonzero only at the label: g_k = -1/c, so dL/dp_j = (g_k [j == k] - g_k q) / sum(p).
            g = 0.0 if (q < lo or q > hi) else -1.0 / c
            for j in range(d):
                grad[i, j] = -g * q / row_sum * scale
            grad[i, k] = (g - g * q) / row_sum * scale
    return total * scale


@jit
def sparse_categorical_crossentropy_from_logits(z, labels, grad, with_grad):
    """``L = lse(z) - z_label``; ``dL/dz = (softmax(z) - onehot(label)) / n``."""
    n, d = z.shape
    scale = 1.0 / n
    total = 0.0
    for i in range(n):
        k = labels[i]
        lse = log_sum_exp(z[i])
        total += lse - float(z[i, k])
        if with_grad:
            for j in range(d):
                grad[i, j] = math.exp(float(z[i, j]) - lse) * scale
            grad[i, k] -= scale
    return total * scale


@jit
def weighted_rows(kernel, p, t, grad, weights, with_grad):
    """Keras's weighted "sum_over_batch_size" of any loss kernel above: ``sum_r w_r l_r / R`` over
    the ``R`` rows, ``l_r`` the kernel's mean over row ``r`` alone, and its gradient (each row's own
    gradient times ``w_r / R``). Dividing by ``R``, not by the sum of the weights, makes a row of
    weight 2 count as that row given twice."""
    rows = p.shape[0]
    total = 0.0
    for r in range(rows):
        total += weights[r] * kernel(p[r : r + 1], t[r : r + 1], grad[r : r + 1], with_grad)
    if with_grad:
        for r in range(rows):
            scale = weights[r] / rows
            for j in range(grad.shape[1]):
                grad[r, j] *= scale
    return total / rows
