"""Activation kernels: forward ``y = f(z)`` and backward ``dL/dz = dL/dy * f'(z)`` on 2-D arrays.

Activations are selected by an integer code (the constants below) rather than by passing a
function, so that kernels stay cacheable on disk; each code has kernels of its own
(`FORWARD`, `BACKWARD`), compiled on first use with the code a constant.

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
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from fastdnn.kernels.jit import KernelsByKey, jit

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


# Eigen's generic_fast_tanh_float (the one XLA uses on CPUs): an odd degree-13 over even degree-6
# polynomial on [-c, c], within 3e-7 of tanh. libm's tanhf/expf are a call per element that LLVM
# cannot vectorize (tanh over 1024 x 512 floats: 11.7 ms with tanhf, 0.36 ms with this).
_TANH_CLAMP = np.float32(7.90531110763549805)
_A1, _A3, _A5, _A7 = (np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04),
                      np.float32(1.48572235717979e-05), np.float32(5.12229709037114e-08))
_A9, _A11, _A13 = np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = (np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03),
                      np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06))


@jit(inline="always")
def _tanh_rational(z):
    # Comparisons rather than min/max: a NaN fails both and propagates.
    x = _TANH_CLAMP if z > _TANH_CLAMP else (-_TANH_CLAMP if z < -_TANH_CLAMP else z)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return x * p / q


def fast_tanh_scalar(z):
    """``tanh z``: the rational approximation for float32 (vectorizable), ``math.tanh`` otherwise."""
    return math.tanh(z)


def fast_sigmoid_scalar(z):
    """``1 / (1 + e^-z)`` without overflow; in float32 through the vectorizable `fast_exp_scalar`."""
    return sigmoid_scalar(z)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bit pattern is the int32 ``bits`` (a free register move)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


# Cephes's expf (as in Eigen's pexp): e^x = 2^m e^r, m = round(x log2 e), r = x - m ln 2 in two
# parts (Cody-Waite), e^r by a degree-7 polynomial, 2^m built from its exponent bits.
_EXP_HI = np.float32(88.3762626647950)
_EXP_LO = np.float32(-88.3762626647949)
_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_E0, _E1, _E2 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
_E3, _E4, _E5 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)
_EXPONENT_BIAS = np.float32(127.0)


# Its own flags, not config's: "reassoc" would fold the two-part reduction back into one and lose
# the bits it exists to keep. Within 1 ulp of exp on float32; NaN stays NaN, large x gives inf, very
# negative x gives 0.
@jit(fastmath={"nsz", "contract"})
def _exp32(x):
    x = _EXP_HI if x > _EXP_HI else (_EXP_LO if x < _EXP_LO else x)
    m = np.floor(x * _LOG2E + _HALF)  # np.floor stays float32; math.floor's int64 does not vectorize
    r = x - m * _LN2_HI
    r = r - m * _LN2_LO
    y = _E0 * r + _E1
    y = y * r + _E2
    y = y * r + _E3
    y = y * r + _E4
    y = y * r + _E5
    y = y * (r * r) + r + _ONE
    return y * _float32_from_bits(np.int32(m + _EXPONENT_BIAS) << 23)


def fast_exp_scalar(z):
    """``e^z``: a vectorizable polynomial for float32 (within 1 ulp), ``math.exp`` otherwise."""
    return math.exp(z)


@overload(fast_exp_scalar)
def _fast_exp_overload(z):
    if isinstance(z, types.Float) and z.bitwidth == 32:
        return lambda z: _exp32(z)
    return lambda z: math.exp(z)


@jit(inline="always")
def _sigmoid32(z):
    # e^-|z| never overflows; a select rather than a branch keeps the loop vectorizable.
    e = _exp32(-abs(z))
    s = _ONE / (_ONE + e)
    return s if z >= _ZERO else e * s


@overload(fast_tanh_scalar)
def _fast_tanh_overload(z):
    if isinstance(z, types.Float) and z.bitwidth == 32:
        return lambda z: _tanh_rational(z)
    return lambda z: math.tanh(z)


@overload(fast_sigmoid_scalar)
def _fast_sigmoid_overload(z):
    if isinstance(z, types.Float) and z.bitwidth == 32:
        return lambda z: _sigmoid32(z)
    return lambda z: sigmoid_scalar(z)


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
        return fast_sigmoid_scalar(z)
    if code == TANH:
        return fast_tanh_scalar(z)
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
    return z * fast_sigmoid_scalar(z)


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
    s = fast_sigmoid_scalar(z)
    return s * (_ONE + z * (_ONE - s))


@jit(inline="always")  # a helper of other kernels: no compile of its own on a first run
def softmax_row(z, y):
    """``y = exp(z - max z) / sum(exp(z - max z))`` for one row; ``y`` may be ``z``."""
    d = z.shape[0]
    m = z[0]
    for j in range(1, d):
        if z[j] > m:
            m = z[j]
    total = 0.0  # float64 sum: rows can be long
    for j in range(d):
        e = fast_exp_scalar(z[j] - m)
        y[j] = e
        total += e
    inv = _ONE / total
    for j in range(d):
        y[j] = y[j] * inv


@jit(inline="always")
def _add_bias(z, b):
    """``z += b`` along the rows, when ``b`` is non-empty (a Dense or Conv bias)."""
    n, d = z.shape
    if b.shape[0] > 0:
        for i in range(n):
            for j in range(d):
                z[i, j] += b[j]


# -- one compiled kernel per activation --------------------------------------------------------------
# Each kernel is built on first use, with only its activation's loop (elementwise ones close over the
# code, a compile-time constant to numba, for which forward_scalar is specialized), so a model compiles
# the activations it uses and no others: one kernel that switched on the code at run time compiled all
# ten, 2-3 s of a first run. numba's disk cache keys each kernel on its name (below) and its code.

#: Kernel-name suffix of each code.
NAMES = {
    LINEAR: "linear",
    SIGMOID: "sigmoid",
    TANH: "tanh",
    RELU: "relu",
    LEAKY_RELU: "leaky_relu",
    ELU: "elu",
    SOFTPLUS: "softplus",
    GELU: "gelu",
    SILU: "silu",
    SOFTMAX: "softmax",
}


def _specialized(kernel, family, code):
    """Name the closure ``kernel`` ``<family>_<activation>`` (its cache file and its name in profiles)."""
    if code not in NAMES:
        raise ValueError(f"activation code: expected one of {sorted(NAMES)}, received {code!r}")
    kernel.__name__ = kernel.__qualname__ = f"{family}_{NAMES[code]}"
    return kernel


def _build_forward(code):
    # The loop is chosen here, in Python, so that numba types and compiles only that loop. Two passes
    # (bias, then activation) rather than one fused loop: each vectorizes, and the second reads z from
    # cache. In place (``y`` is ``z``) the elementwise loop is correct but runs scalar: two names for
    # one memory fail LLVM's runtime overlap check, so layers give ``y`` a buffer of its own.
    if code == SOFTMAX:

        def kernel(z, b, alpha, y):
            _add_bias(z, b)
            for i in range(z.shape[0]):
                softmax_row(z[i], y[i])

    elif code == GELU:

        def kernel(z, b, alpha, y):
            _add_bias(z, b)
            n, d = z.shape
            for i in range(n):
                for j in range(d):
                    y[i, j] = gelu_scalar(z[i, j])

    elif code == LINEAR:

        def kernel(z, b, alpha, y):
            _add_bias(z, b)
            if z.ctypes.data != y.ctypes.data:
                n, d = z.shape
                for i in range(n):
                    for j in range(d):
                        y[i, j] = z[i, j]

    else:

        def kernel(z, b, alpha, y):
            _add_bias(z, b)
            n, d = z.shape
            for i in range(n):
                for j in range(d):
                    y[i, j] = forward_scalar(code, z[i, j], alpha)

    return jit(_specialized(kernel, "activation_forward", code))


def _build_backward(code):
    # As `_build_forward`. (Layers pass separate dLdY and dLdZ; in place it is correct, not vectorized.)
    if code == SOFTMAX:

        def kernel(z, y, dLdY, alpha, dLdZ):
            # Softmax couples a row: dL/dz_j = y_j (dL/dy_j - sum_k dL/dy_k y_k).
            n, d = y.shape
            for i in range(n):
                inner = 0.0
                for j in range(d):
                    inner += dLdY[i, j] * y[i, j]
                for j in range(d):
                    dLdZ[i, j] = y[i, j] * (dLdY[i, j] - inner)

    elif code == GELU:

        def kernel(z, y, dLdY, alpha, dLdZ):
            n, d = y.shape
            for i in range(n):
                for j in range(d):
                    dLdZ[i, j] = dLdY[i, j] * gelu_derivative_scalar(z[i, j])

    else:

        def kernel(z, y, dLdY, alpha, dLdZ):
            n, d = y.shape
            for i in range(n):
                for j in range(d):
                    dLdZ[i, j] = dLdY[i, j] * derivative_scalar(code, z[i, j], y[i, j], alpha)

    return jit(_specialized(kernel, "activation_backward", code))


#: ``FORWARD[code](z, b, alpha, y)``: ``z += b`` in place (when ``b`` is non-empty), then ``y = f(z)``;
#: ``y`` may be ``z`` (then ``z`` is not kept).
FORWARD = KernelsByKey(_build_forward)

#: ``BACKWARD[code](z, y, dLdY, alpha, dLdZ)`` writes ``dL/dz``.
BACKWARD = KernelsByKey(_build_backward)


def activation_forward(code, z, alpha, y):
    """Write ``f(z)`` into ``y`` (2-D, same shape; may be the same array as ``z``)."""
    FORWARD[code](z, np.empty(0, z.dtype), alpha, y)  # no bias


def activation_backward(code, z, y, dLdY, alpha, dLdZ):
    """Write ``dL/dz`` into ``dLdZ`` given ``dL/dy``; ``dLdZ`` may be the same array as ``dLdY``."""
    BACKWARD[code](z, y, dLdY, alpha, dLdZ)
