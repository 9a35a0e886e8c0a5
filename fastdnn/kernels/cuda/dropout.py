"""CUDA twins of ``kernels.cpu.dropout`` (inverted dropout), plus the uniform draws made on the device.

The twins keep the CPU signatures: ``dropout_forward(x, u, rate, scale, y)`` turns the uniform
draws ``u`` into the scaled mask in place and applies it, ``dropout_backward`` applies that mask::

    mask = 1 / (1 - rate) where u >= rate, else 0;   y = x * mask;   dL/dx = dL/dy * mask

On the CPU ``u`` comes from a NumPy Generator; copying host randoms to the GPU every batch would
cost a transfer as large as the activations, so here ``u`` is drawn on the device (`fill_uniform`)
from xoroshiro128p states (`random_states`) that the layer creates once, seeded from its host
generator: seeded runs are reproducible, but the device masks are not the CPU's masks (they have
the same distribution).
"""

import numpy as np
from numba import cuda
from numba.cuda.random import create_xoroshiro128p_states, xoroshiro128p_uniform_float32, xoroshiro128p_uniform_float64

from fastdnn.kernels.cuda._launch import block, cached_factory, grid

#: Most generator states (threads) of one `fill_uniform`: 2^17 threads keep any current GPU busy,
#: and each state costs 16 bytes and a jump-ahead on the host when created.
MAX_STATES = 1 << 17


@cached_factory
def _forward_kernel(dtype):
    zero = np.dtype(dtype).type(0)  # keeps the mask (and y = x mask) in the array dtype, as on the CPU

    @cuda.jit
    def forward(x, u, rate, scale, y):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            m = scale if u[i] >= rate else zero
            u[i] = m
            y[i] = x[i] * m

    return forward


@cuda.jit
def _backward(dLdY, mask, dX):
    for i in range(cuda.grid(1), dLdY.shape[0], cuda.gridsize(1)):
        dX[i] = dLdY[i] * mask[i]


@cuda.jit
def _uniform_float32(states, u):
    # thread t owns states[t] and the elements t, t + T, t + 2T, ... (T = number of states), so the
    # draws depend on the states alone, not on the launch geometry
    t = cuda.grid(1)
    count = states.shape[0]
    if t < count:
        for i in range(t, u.shape[0], count):
            u[i] = xoroshiro128p_uniform_float32(states, t)


@cuda.jit
def _uniform_float64(states, u):
    t = cuda.grid(1)
    count = states.shape[0]
    if t < count:
        for i in range(t, u.shape[0], count):
            u[i] = xoroshiro128p_uniform_float64(states, t)


def dropout_forward(x, u, rate, scale, y):
    """Overwrite uniform draws ``u`` with the mask (``scale`` = ``1 / (1 - rate)`` kept, 0 dropped); ``y = x * mask``.

    ``rate`` and ``scale`` are in the array dtype; all arrays are 1-D device arrays of one length.
    """
    n = x.shape[0]
    if n:
        _forward_kernel(np.dtype(x.dtype).name)[grid(n), block()](x, u, rate, scale, y)


def dropout_backward(dLdY, mask, dX):
    """``dX = dL/dy * mask`` (the mask of the forward pass)."""
    n = dLdY.shape[0]
    if n:
        _backward[grid(n), block()](dLdY, mask, dX)


def random_states(size, seed):
    """xoroshiro128p generator states for drawing ``size`` uniforms per call to `fill_uniform`.

    One state per thread of the launch that ``size`` elements would get, at most `MAX_STATES`
    (threads then draw several numbers each). ``seed``: a non-negative integer below 2^64.
    """
    count = min(grid(max(int(size), 1)) * block(), MAX_STATES)
    return create_xoroshiro128p_states(count, seed=int(seed))


def fill_uniform(states, u):
    """Fill the 1-D float32/float64 device array ``u`` with uniform draws in [0, 1), advancing ``states``."""
    if u.shape[0] == 0:
        return
    count = states.shape[0]
    kernel = _uniform_float32 if np.dtype(u.dtype) == np.float32 else _uniform_float64
    kernel[max(1, -(-count // block())), block()](states, u)
