"""CUDA twins of ``kernels.cpu.activation``: forward ``y = f(z)`` and backward ``dL/dz`` on 2-D device arrays.

Elementwise codes run one grid-stride loop over all ``n d`` elements; softmax (which couples a row)
runs one thread per row. The scalar maths are ``device=True`` functions shared by the activation,
Dense and loss kernels. gelu is computed in float64, as on the CPU.
"""

import math

from numba import cuda

from fastdnn.kernels.cpu.activation import (  # noqa: F401  (the codes are part of this module's API)
    ELU,
    GELU,
    LEAKY_RELU,
    LINEAR,
    NEEDS_PREACTIVATION,
    RELU,
    SIGMOID,
    SILU,
    SOFTMAX,
    SOFTPLUS,
    TANH,
)
from fastdnn.kernels.cuda._launch import block, grid

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@cuda.jit(device=True)
def sigmoid_scalar(z):
    """Overflow-free logistic function: never evaluates ``exp`` of a positive number."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@cuda.jit(device=True)
def softplus_scalar(z):
    """``max(z, 0) + log1p(exp(-|z|))``."""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


@cuda.jit(device=True)
def forward_scalar(code, z, alpha):
    """``f(z)`` for every elementwise code (gelu included, in float64)."""
    if code == LINEAR:
        return z
    if code == SIGMOID:
        return sigmoid_scalar(z)
    if code == TANH:
        return math.tanh(z)
    # "<= 0" as on the CPU: a NaN falls through to z and propagates.
    if code == RELU:
        return 0.0 if z <= 0 else z
    if code == LEAKY_RELU:
        return alpha * z if z <= 0 else z
    if code == ELU:
        return alpha * math.expm1(z) if z <= 0 else z
    if code == SOFTPLUS:
        return softplus_scalar(z)
    if code == GELU:
        x = float(z)
        return 0.5 * x * (1.0 + math.erf(x * _INV_SQRT2))
    return z * sigmoid_scalar(z)  # SILU


@cuda.jit(device=True)
def derivative_scalar(code, z, y, alpha):
    """``f'(z)`` from ``y = f(z)`` where possible (see the CPU module), every elementwise code."""
    if code == LINEAR:
        return 1.0
    if code == SIGMOID:
        return y * (1.0 - y)
    if code == TANH:
        return 1.0 - y * y
    if code == RELU:
        return 1.0 if y > 0 else 0.0
    if code == LEAKY_RELU:
        return 1.0 if y > 0 else alpha
    if code == ELU:
        return 1.0 if z > 0 else alpha * math.exp(z)
    if code == SOFTPLUS:
        return -math.expm1(-y)
    if code == GELU:
        x = float(z)
        return 0.5 * (1.0 + math.erf(x * _INV_SQRT2)) + x * _INV_SQRT_2PI * math.exp(-0.5 * x * x)
    s = sigmoid_scalar(z)  # SILU
    return s * (1.0 + z * (1.0 - s))


@cuda.jit
def _forward_elementwise(code, z, alpha, y):
    n, d = z.shape
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        i = k // d
        j = k - i * d
        y[i, j] = forward_scalar(code, z[i, j], alpha)


@cuda.jit
def _bias_forward_elementwise(z, b, code, alpha, y):
    n, d = z.shape
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        i = k // d
        j = k - i * d
        v = z[i, j] + b[j]
        z[i, j] = v
        y[i, j] = forward_scalar(code, v, alpha)


@cuda.jit
def _add_bias(z, b):
    n, d = z.shape
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        i = k // d
        j = k - i * d
        z[i, j] += b[j]


@cuda.jit
def _softmax_rows(z, y):
    n, d = z.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        m = z[i, 0]
        for j in range(1, d):
            if z[i, j] > m:
                m = z[i, j]
        total = 0.0
        for j in range(d):
            e = math.exp(z[i, j] - m)
            y[i, j] = e
            total += e
        inv = 1.0 / total
        for j in range(d):
            y[i, j] = y[i, j] * inv


@cuda.jit
def _backward_elementwise(code, z, y, dLdY, alpha, dLdZ):
    n, d = y.shape
    for k in range(cuda.grid(1), n * d, cuda.gridsize(1)):
        i = k // d
        j = k - i * d
        dLdZ[i, j] = dLdY[i, j] * derivative_scalar(code, z[i, j], y[i, j], alpha)


@cuda.jit
def _softmax_backward_rows(y, dLdY, dLdZ):
    n, d = y.shape
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        inner = 0.0
        for j in range(d):
            inner += dLdY[i, j] * y[i, j]
        for j in range(d):
            dLdZ[i, j] = y[i, j] * (dLdY[i, j] - inner)


def activation_forward(code, z, alpha, y):
    """Write ``f(z)`` into ``y`` (2-D device arrays, same shape; ``y`` may be ``z``)."""
    n, d = z.shape
    if n * d == 0:
        return
    if code == SOFTMAX:
        _softmax_rows[grid(n), block()](z, y)
    else:
        _forward_elementwise[grid(n * d), block()](code, z, alpha, y)


def activation_backward(code, z, y, dLdY, alpha, dLdZ):
    """Write ``dL/dz`` into ``dLdZ`` given ``dL/dy`` (``dLdZ`` may be ``dLdY``)."""
    n, d = y.shape
    if n * d == 0:
        return
    if code == SOFTMAX:
        _softmax_backward_rows[grid(n), block()](y, dLdY, dLdZ)
    else:
        _backward_elementwise[grid(n * d), block()](code, z, y, dLdY, alpha, dLdZ)


def bias_activation(z, b, code, alpha, y):
    """In place ``z += b`` (if ``b`` is non-empty), then ``y = f(z)``; one pass unless softmax."""
    n, d = z.shape
    if n * d == 0:
        return
    has_bias = b.shape[0] > 0
    if code == SOFTMAX or not has_bias:
        if has_bias:
            _add_bias[grid(n * d), block()](z, b)
        activation_forward(code, z, alpha, y)
        return
    _bias_forward_elementwise[grid(n * d), block()](z, b, code, alpha, y)
