"""CUDA twins of ``kernels.cpu.dropout`` (inverted dropout with a counter-based mask).

The twins keep the CPU signatures and its hash, so the device draws the CPU's masks bit for bit::

    u_i = mix64(stream + (first + i) * golden) / 2^64     (SplitMix64's output function, top 53 bits)
    mask = 1 / (1 - rate) where u >= rate, else 0;   y = x * mask;   dL/dx = dL/dy * mask

Each thread hashes its own elements' global positions: no generator state, no host randoms copied
over, and the masks do not depend on the launch geometry.
"""

import numpy as np
from numba import cuda

from fastdnn.kernels.cpu.dropout import GOLDEN, _M1, _M2, _S11, _S27, _S30, _S31, _TWO_TO_MINUS_53
from fastdnn.kernels.cuda._launch import block, cached_factory, grid


@cuda.jit(device=True)
def mix64(z):
    """SplitMix64's output function (the CPU's ``mix64``)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@cuda.jit(device=True)
def counter_uniform(stream, index):
    """The CPU's ``counter_uniform``: element ``index``'s uniform number in [0, 1) of the step ``stream``."""
    return np.float64(mix64(np.uint64(stream) + np.uint64(index) * GOLDEN) >> _S11) * _TWO_TO_MINUS_53


@cached_factory
def _forward_kernel(dtype):
    zero = np.dtype(dtype).type(0)  # keeps the mask (and y = x mask) in the array dtype, as on the CPU

    @cuda.jit
    def forward(x, stream, first, rate, scale, mask, y):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            m = scale if counter_uniform(stream, first + i) >= rate else zero
            mask[i] = m
            y[i] = x[i] * m

    return forward


@cuda.jit
def _backward(dLdY, mask, dX):
    for i in range(cuda.grid(1), dLdY.shape[0], cuda.gridsize(1)):
        dX[i] = dLdY[i] * mask[i]


def dropout_forward(x, stream, first, rate, scale, mask, y):
    """``mask`` of elements ``first, first + 1, ...`` of the step ``stream`` (a ``numpy.uint64``), and
    ``y = x * mask``. ``rate`` and ``scale`` in the array dtype; 1-D device arrays of one length."""
    n = x.shape[0]
    if n:
        _forward_kernel(np.dtype(x.dtype).name)[grid(n), block()](x, np.uint64(stream), np.int64(first), rate, scale, mask, y)


def dropout_backward(dLdY, mask, dX):
    """``dX = dL/dy * mask`` (the mask of the forward pass)."""
    n = dLdY.shape[0]
    if n:
        _backward[grid(n), block()](dLdY, mask, dX)
