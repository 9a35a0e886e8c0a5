"""Central finite differences in float64: the numerical side of every gradient check."""

import numpy as np

#: Step for central differences in float64: error ~ h^2 f''' (truncation) + eps_mach f / h (rounding).
STEP = 1e-6


def numerical_gradient(f, x, step=STEP):
    """``df/dx`` of a scalar function ``f`` at float64 array ``x`` by central differences.

    ``x`` is perturbed in place one element at a time and restored, so ``f`` may read it by reference.
    """
    if x.dtype != np.float64:
        raise TypeError(f"x: expected float64 for finite differences, received {x.dtype}")
    grad = np.empty_like(x)
    flat = x.reshape(-1)
    out = grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + step
        upper = float(f())
        flat[i] = original - step
        lower = float(f())
        flat[i] = original
        out[i] = (upper - lower) / (2.0 * step)
    return grad


def relative_error(numerical, analytical, floor=1e-8):
    """Largest ``|a - n| / max(|a|, |n|, floor)`` over the elements."""
    numerical = np.asarray(numerical, dtype=np.float64)
    analytical = np.asarray(analytical, dtype=np.float64)
    scale = np.maximum(np.maximum(np.abs(numerical), np.abs(analytical)), floor)
    return float(np.max(np.abs(numerical - analytical) / scale))
