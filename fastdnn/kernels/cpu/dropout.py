"""Dropout kernels on flat arrays: inverted dropout with a mask drawn outside the kernel.

The uniform numbers come from a NumPy Generator (`fastdnn.random`), so that ``fd.set_seed`` makes a
run reproducible; the kernel turns them into the scaled mask in place and applies it::

    mask = 1 / (1 - rate) where u >= rate, else 0;   y = x * mask;   dL/dx = dL/dy * mask
"""

import numpy as np

from fastdnn.kernels.jit import jit

_ZERO = np.float32(0.0)


@jit
def dropout_forward(x, u, rate, scale, y):
    """Overwrite uniform draws ``u`` with the mask (``scale`` = ``1 / (1 - rate)`` kept, 0 dropped); ``y = x * mask``.

    ``rate`` and ``scale`` are in the array dtype; all arrays are 1-D and of one length.
    """
    for i in range(x.shape[0]):
        m = scale if u[i] >= rate else _ZERO
        u[i] = m
        y[i] = x[i] * m


@jit
def dropout_backward(dLdY, mask, dX):
    """``dX = dL/dy * mask`` (the mask of the forward pass)."""
    for i in range(dLdY.shape[0]):
        dX[i] = dLdY[i] * mask[i]
