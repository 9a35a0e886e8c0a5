"""Dropout kernels on flat arrays: inverted dropout with a counter-based mask.

The uniform number of element ``i`` of a step is a hash of the step's stream word (from the layer's
key and step count, `fastdnn.random.CounterStream`) and of ``i``'s position in the GLOBAL batch, so a
data-parallel process draws for its rows exactly the numbers one process draws for them, and the
CUDA twin (``kernels.cuda.dropout``) the same numbers as the CPU::

    u_i = mix64(stream + (first + i) * golden) / 2^64     (SplitMix64's output function, top 53 bits)
    mask = 1 / (1 - rate) where u >= rate, else 0;   y = x * mask;   dL/dx = dL/dy * mask
"""

import numpy as np

from fastdnn.kernels.jit import jit

_ZERO = np.float32(0.0)
#: SplitMix64's increment (2^64 / golden ratio) and multipliers.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31 = np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
_TWO_TO_MINUS_53 = 2.0**-53


@jit
def mix64(z):
    """SplitMix64's output function: a bijection of 64-bit words whose output bits all depend on every input bit."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit
def counter_uniform(stream, index):
    """The uniform number in [0, 1) (float64, 53 bits) of element ``index`` of the step with word ``stream``."""
    return np.float64(mix64(np.uint64(stream) + np.uint64(index) * GOLDEN) >> _S11) * _TWO_TO_MINUS_53


@jit
def dropout_forward(x, stream, first, rate, scale, mask, y):
    """``mask`` of elements ``first, first + 1, ...`` of the step ``stream`` (``scale`` = ``1 / (1 - rate)``
    kept, 0 dropped) and ``y = x * mask``. ``rate``, ``scale`` in the array dtype; 1-D arrays of one length."""
    for i in range(x.shape[0]):
        m = scale if counter_uniform(stream, first + i) >= rate else _ZERO
        mask[i] = m
        y[i] = x[i] * m


@jit
def dropout_backward(dLdY, mask, dX):
    """``dX = dL/dy * mask`` (the mask of the forward pass)."""
    for i in range(dLdY.shape[0]):
        dX[i] = dLdY[i] * mask[i]
