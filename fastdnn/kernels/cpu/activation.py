"""Activation kernels: forward ``y = f(z)`` and backward ``dL/dz = dL/dy * f'(z)`` on 2-D arrays.

Activations are selected by an integer code (the constants below) rather than by passing a
function, so that every kernel compiles once per dtype and stays cacheable on disk; the branch on
the code is loop-invariant and hoisted out of the loops by LLVM.

Where the derivative can be written in terms of the output ``y`` (sigmoid, tanh, relu, leaky relu,
softplus, softmax), the backward pass reads only ``y``, so layers need not keep ``z``; the codes in
``NEEDS_PREACTIVATION`` read ``z``.

Arithmetic stays in the array's dtype: constants are float32 values exact in both precisions (numba
promotes them to float64 next to float64 data), and callers pass ``alpha`` in the array's dtype. A
stray float64 literal would turn every float32 loop into conversions and halve its vector width.
gelu, whose constants are not exact in float32, computes in float64.
"""

import math

import numpy as np

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

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@jit
def sigmoid_scalar(z):
    """Overflow-free logistic function: never evaluates ``exp`` of a positive number."""
    if z >= _ZERO:
        return _ONE / (_ONE + math.exp(-z))
    e = math.exp(z)
    return e / (_ONE + e)


@jit
def softplus_scalar(z):
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return max(z, _ZERO) + math.log1p(math.exp(-abs(z)))


@jit
def gelu_scalar(z):
    """``z Phi(z)`` in float64, returned in float64 (its constants are not exact in float32)."""
    x = float(z)
    return 0.5 * x * (1.0 + math.erf(x * _INV_SQRT2))


@jit
def gelu_derivative_scalar(z):
    """``Phi(z) + z phi(z)`` in float64."""
    x = float(z)
    return 0.5 * (1.0 + math.erf(x * _INV_SQRT2)) + x * _INV_SQRT_2PI * math.exp(-0.5 * x * x)


@jit
def forward_scalar(code, z, alpha):
    """``f(z)`` for an elementwise activation other than gelu and softmax, in the dtype of ``z``.

    ``alpha`` is the slope (leaky relu, elu). Every branch keeps the type of ``z``, so that a loop
    over one code vectorizes in float32.
    """
    if code == LINEAR:
        return z
    if code == SIGMOID:
        return sigmoid_scalar(z)
    if code == TANH:
        return math.tanh(z)
    # "<= 0" rather than "> 0": a NaN falls through to z and propagates, as in NumPy, instead of
    # being silently turned into 0 (which would hide NaN weights behind a finite loss).
    if code == RELU:
        return _ZERO if z <= _ZERO else z
    if code == LEAKY_RELU:
        return alpha * z if z <= _ZERO else z
    if code == ELU:
        return alpha * math.expm1(z) if z <= _ZERO else z
    if code == SOFTPLUS:
        return softplus_scalar(z)
    # SILU (GELU has loops of its own: see gelu_scalar)
    return z * sigmoid_scalar(z)


@jit
def derivative_scalar(code, z, y, alpha):
    """``f'(z)`` (not gelu, softmax), from ``y = f(z)`` where possible (see module docstring)."""
    if code == LINEAR:
        return _ONE
    if code == SIGMOID:
        return y * (_ONE - y)
    if code == TANH:
        return _ONE - y * y
    if code == RELU:
        return _ONE if y > _ZERO else _ZERO
    if code == LEAKY_RELU:
        return _ONE if y > _ZERO else alpha
    if code == ELU:
        return _ONE if z > _ZERO else alpha * math.exp(z)
    if code == SOFTPLUS:
        # y = log(1 + e^z)  =>  sigmoid(z) = 1 - e^-y, accurate for tiny y through expm1.
        return -math.expm1(-y)
    # SILU
    s = sigmoid_scalar(z)
    return s * (_ONE + z * (_ONE - s))


@jit
def softmax_row(z, y):
    """``y = exp(z - max z) / sum(exp(z - max z))`` for one row; ``y`` may be ``z``."""
    d = z.shape[0]
    m = z[0]
    for j in range(1, d):
        if z[j] > m:
            m = z[j]
    total = 0.0  # float64 sum: rows can be long
    for j in range(d):
        e = math.exp(z[j] - m)
        y[j] = e
        total += e
    inv = _ONE / total
    for j in range(d):
        y[j] = y[j] * inv


@jit
def activation_forward(code, z, alpha, y):
    """Write ``f(z)`` into ``y`` (2-D, same shape; may be the same array as ``z``)."""
    n, d = z.shape
    if code == SOFTMAX:
        for i in range(n):
            softmax_row(z[i], y[i])
    elif code == GELU:
        for i in range(n):
            for j in range(d):
                y[i, j] = gelu_scalar(z[i, j])
    else:
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
    elif code == GELU:
        for i in range(n):
            for j in range(d):
                dLdZ[i, j] = dLdY[i, j] * gelu_derivative_scalar(z[i, j])
    else:
        for i in range(n):
            for j in range(d):
                dLdZ[i, j] = dLdY[i, j] * derivative_scalar(code, z[i, j], y[i, j], alpha)
