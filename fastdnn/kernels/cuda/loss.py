"""CUDA twins of ``kernels.cpu.loss``: same formulas, reductions and clipping (see the CPU module).

One thread per row computes the row's loss (in float64) and, with ``with_grad``, its gradient; the
launcher copies the ``n`` row losses back and returns their mean, a Python float like the CPU twin
(the model needs the value on the host anyway, to stop on a non-finite loss).
"""

import math

import numpy as np
from numba import cuda

from fastdnn.kernels.cpu.loss import EPSILON
from fastdnn.kernels.cuda._launch import block, column_totals, grid
from fastdnn.kernels.cuda.activation import sigmoid_scalar, softplus_scalar

_row_buffers = {}


def _rows(n):
    """A reused float64 device buffer of ``n`` row losses and, last, their sum."""
    buffer = _row_buffers.get(n)
    if buffer is None:
        buffer = _row_buffers[n] = cuda.device_array(n + 1, dtype=np.float64)
    return buffer


def _launch(kernel, p, t, grad, with_grad):
    """Run a row-loss kernel and return the mean loss as a Python float. The rows are summed on the
    device, so one float64 crosses to the host per batch, not one per row."""
    n = p.shape[0]
    if n == 0:
        return 0.0
    rows = _rows(n)
    kernel[grid(n), block()](p, t, grad, with_grad, rows)
    column_totals(rows[:n].reshape(n, 1), rows[n:], False)
    return float(rows[n:].copy_to_host()[0])


@cuda.jit(device=True)
def _log_sum_exp(z, i):
    d = z.shape[1]
    m = float(z[i, 0])
    for j in range(1, d):
        m = max(m, float(z[i, j]))
    total = 0.0
    for j in range(d):
        total += math.exp(float(z[i, j]) - m)
    return m + math.log(total)


@cuda.jit
def _mse(p, t, grad, with_grad, rows):
    n, d = p.shape
    scale = 1.0 / (n * d)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        total = 0.0
        for j in range(d):
            diff = float(p[i, j]) - float(t[i, j])
            total += diff * diff
            if with_grad:
                grad[i, j] = 2.0 * diff * scale
        rows[i] = total * scale


@cuda.jit
def _mae(p, t, grad, with_grad, rows):
    n, d = p.shape
    scale = 1.0 / (n * d)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        total = 0.0
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
        rows[i] = total * scale


@cuda.jit
def _bce(p, t, grad, with_grad, rows):
    n, d = p.shape
    scale = 1.0 / (n * d)
    lo = EPSILON
    hi = 1.0 - EPSILON
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        total = 0.0
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
        rows[i] = total * scale


@cuda.jit
def _bce_logits(z, t, grad, with_grad, rows):
    n, d = z.shape
    scale = 1.0 / (n * d)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        total = 0.0
        for j in range(d):
            logit = float(z[i, j])
            target = float(t[i, j])
            total += softplus_scalar(logit) - target * logit
            if with_grad:
                grad[i, j] = (sigmoid_scalar(logit) - target) * scale
        rows[i] = total * scale


@cuda.jit
def _cce(p, t, grad, with_grad, rows):
    n, d = p.shape
    scale = 1.0 / n
    lo = EPSILON
    hi = 1.0 - EPSILON
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        row_sum = 0.0
        for j in range(d):
            row_sum += float(p[i, j])
        total = 0.0
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
        rows[i] = total * scale


@cuda.jit
def _cce_logits(z, t, grad, with_grad, rows):
    n, d = z.shape
    scale = 1.0 / n
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        lse = _log_sum_exp(z, i)
        t_sum = 0.0
        total = 0.0
        for j in range(d):
            target = float(t[i, j])
            t_sum += target
            total += target * (lse - float(z[i, j]))
        if with_grad:
            for j in range(d):
                prob = math.exp(float(z[i, j]) - lse)
                grad[i, j] = (prob * t_sum - float(t[i, j])) * scale
        rows[i] = total * scale


@cuda.jit
def _scce(p, labels, grad, with_grad, rows):
    n, d = p.shape
    scale = 1.0 / n
    lo = EPSILON
    hi = 1.0 - EPSILON
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        k = labels[i]
        row_sum = 0.0
        for j in range(d):
            row_sum += float(p[i, j])
        q = float(p[i, k]) / row_sum
        c = min(max(q, lo), hi)
        if with_grad:
            g = 0.0 if (q < lo or q > hi) else -1.0 / c
            for j in range(d):
                grad[i, j] = -g * q / row_sum * scale
            grad[i, k] = (g - g * q) / row_sum * scale
        rows[i] = -math.log(c) * scale


@cuda.jit
def _scce_logits(z, labels, grad, with_grad, rows):
    n, d = z.shape
    scale = 1.0 / n
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        k = labels[i]
        lse = _log_sum_exp(z, i)
        if with_grad:
            for j in range(d):
                grad[i, j] = math.exp(float(z[i, j]) - lse) * scale
            grad[i, k] -= scale
        rows[i] = (lse - float(z[i, k])) * scale


def mean_squared_error(p, t, grad, with_grad):
    """``mean((p - t)^2)``; ``dL/dp = 2 (p - t) / (n d)``."""
    return _launch(_mse, p, t, grad, with_grad)


def mean_absolute_error(p, t, grad, with_grad):
    """``mean(|p - t|)``; ``dL/dp = sign(p - t) / (n d)``."""
    return _launch(_mae, p, t, grad, with_grad)


def binary_crossentropy(p, t, grad, with_grad):
    """Clipped binary crossentropy of probabilities (Keras's formula)."""
    return _launch(_bce, p, t, grad, with_grad)


def binary_crossentropy_from_logits(z, t, grad, with_grad):
    """``mean(softplus(z) - t z)``; ``dL/dz = (sigmoid(z) - t) / (n d)``."""
    return _launch(_bce_logits, z, t, grad, with_grad)


def categorical_crossentropy(p, t, grad, with_grad):
    """Keras's categorical crossentropy on (renormalised, clipped) probabilities."""
    return _launch(_cce, p, t, grad, with_grad)


def categorical_crossentropy_from_logits(z, t, grad, with_grad):
    """``L = sum_j t_j (lse(z) - z_j)``; ``dL/dz_j = (softmax(z)_j sum(t) - t_j) / n``."""
    return _launch(_cce_logits, z, t, grad, with_grad)


def sparse_categorical_crossentropy(p, labels, grad, with_grad):
    """Categorical crossentropy of probabilities against integer ``labels``."""
    return _launch(_scce, p, labels, grad, with_grad)


def sparse_categorical_crossentropy_from_logits(z, labels, grad, with_grad):
    """``L = lse(z) - z_label``; ``dL/dz = (softmax(z) - onehot(label)) / n``."""
    return _launch(_scce_logits, z, labels, grad, with_grad)


@cuda.jit
def _weigh_rows(rows, grad, weights, with_grad):
    n, d = grad.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        w = float(weights[i])
        rows[i] *= w
        if with_grad:
            for j in range(d):
                grad[i, j] *= w


def weighted_rows(kernel, p, t, grad, weights, with_grad):
    """Keras's weighted "sum_over_batch_size" of the loss launcher ``kernel`` (one of the functions
    above): ``sum_r w_r l_r / R`` and its gradient, as the CPU twin. The launcher's row losses and
    gradients already carry the batch's ``1 / R``, so each row is scaled by its weight and summed again.
    """
    n = p.shape[0]
    if n == 0:
        return 0.0
    kernel(p, t, grad, with_grad)
    rows = _rows(n)
    _weigh_rows[grid(n), block()](rows, grad, weights, with_grad)
    column_totals(rows[:n].reshape(n, 1), rows[n:], False)
    return float(rows[n:].copy_to_host()[0])
