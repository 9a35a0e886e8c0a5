"""Activation kernels: forward ``y = f(z)`` and backward ``dL/dz = dL/dy * f'(z)`` on 2-D arrays.

Activations are selected by an integer code (the constants below) rather than by passing a
function, so that every kernel compiles once per dtype and stays cacheable on disk; the branch on
the code is loop-invariant and hoisted out of the loops by LLVM.

Where the derivative can be written in terms of the output ``y`` (sigmoid, tanh, relu, leaky relu,
softplus, softmax), the backward pass reads only ``y``, so layers need not keep ``z``; the codes in
``NEEDS_PREACTIVATION`` read ``z``. Arithmetic is done in float64 and stored in the array's dtype.
"""

import math

from fastdnn.kernels.jit import jit

LINEAR = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
ELU = 5
SOFTPLUS = 6
GELU = 7
SILU = 8
SOFTMAX = 9

#: Codes whose derivative needs the pre-activation ``z`` (the others use ``y`` only).
NEEDS_PREACTIVATION = frozenset({ELU, GELU, SILU})

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@jit
def sigmoid_scalar(z):
    """Overflow-free logistic function: never evaluates ``exp`` of a positive number."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@jit
def softplus_scalar(z):
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


@jit
def forward_scalar(code, z, alpha):
    """``f(z)`` for an elementwise activation ``code``; ``alpha`` is the slope (leaky relu, elu)."""
    z = float(z)
    if code == LINEAR:
        return z
    if code == SIGMOID:
        return sigmoid_scalar(z)
    if code == TANH:
        return math.tanh(z)
    if code == RELU:
        return z if z > 0.0 else 0.0
    if code == LEAKY_RELU:
        return z if z > 0.0 else alpha * z
    if code == ELU:
        return z if z > 0.0 else alpha * math.expm1(z)
    if code == SOFTPLUS:
        return softplus_scalar(z)
    if code == GELU:
        return 0.5 * z * (1.0 + math.erf(z * _INV_SQRT2))
    # SILU
    return z * sigmoid_scalar(z)


@jit
def derivative_scalar(code, z, y, alpha):
    """``f'(z)``, from ``y = f(z)`` where possible (see module docstring)."""
    z = float(z)
    y = float(y)
    if code == LINEAR:
        return 1.0
    if code == SIGMOID:
        return y * (1.0 - y)
    if code == TANH:
        return 1.0 - y * y
    if code == RELU:
        return 1.0 if y > 0.0 else 0.0
    if code == LEAKY_RELU:
        return 1.0 if y > 0.0 else alpha
    if code == ELU:
        return 1.0 if z > 0.0 else alpha * math.exp(z)
    if code == SOFTPLUS:
        # y = log(1 + e^z)  =>  sigmoid(z) = 1 - e^-y, accurate for tiny y through expm1.
        return -math.expm1(-y)
    if code == GELU:
        return 0.5 * (1.0 + math.erf(z * _INV_SQRT2)) + z * _INV_SQRT_2PI * math.exp(-0.5 * z * z)
    # SILU
    s = sigmoid_scalar(z)
    return s * (1.0 + z * (1.0 - s))


@jit
def softmax_row(z, y):
    """``y = exp(z - max z) / sum(exp(z - max z))`` for one row; ``y`` may be ``z``."""
    d = z.shape[0]
    m = -math.inf
    for j in range(d):
        if z[j] > m:
            m = z[j]
    total = 0.0
    for j in range(d):
        e = math.exp(z[j] - m)
        y[j] = e
        total += e
    inv = 1.0 / total
    for j in range(d):
        y[j] = y[j] * inv


@jit
def activation_forward(code, z, alpha, y):
    """Write ``f(z)`` into ``y`` (2-D, same shape; may be the same array as ``z``)."""
    n, d = z.shape
    if code == SOFTMAX:
        for i in range(n):
            softmax_row(z[i], y[i])
        return
    for i in range(n):
        for j in range(d):
            y[i, j] = forward_scalar(code, z[i, j], alpha)


@jit
def activation_backward(code, z, y, dLdY, alpha, dLdZ):
    """Write ``dL/dz`` into ``dLdZ`` given ``dL/dy``; ``dLdZ`` may be the same array as ``dLdY``.

    Softmax couples a row: ``dL/dz_j = y_j (dL/dy_j - sum_k dL/dy_k y_k)``.
    """
    n, d = y.shape
    if code == SOFTMAX:
        for i in range(n):
            inner = 0.0
            for j in range(d):
                inner += dLdY[i, j] * y[i, j]
            for j in range(d):
                dLdZ[i, j] = y[i, j] * (dLdY[i, j] - inner)
        return
    for i in range(n):
        for j in range(d):
            dLdZ[i, j] = dLdY[i, j] * derivative_scalar(code, z[i, j], y[i, j], alpha)
