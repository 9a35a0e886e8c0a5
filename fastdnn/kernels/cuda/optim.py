"""CUDA twins of ``kernels.cpu.optim``: each rule ONE fused grid-stride kernel over the flat buffers.

Same formulas, argument order and in-place outputs as the CPU module (Keras 3's update rules).
Hyperparameters arrive in the buffers' dtype; state buffers a configuration does not use are empty
device arrays and never touched.

One difference: the CPU kernels flush decaying state to 0 once it falls below the smallest normal
number (subnormal numbers take a slow path on x86 CPUs); GPUs handle them at full speed, so these
keep them. The two differ by less than the smallest normal number.
"""

import math

import numpy as np
from numba import cuda

from fastdnn.kernels.cuda._launch import block, block_sum, cached_factory, grid, tree_threads


@cuda.jit
def _sgd(p, g, lr):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        p[i] -= lr * g[i]


@cuda.jit
def _momentum(p, g, m, lr, momentum, nesterov):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        step = lr * g[i]
        velocity = momentum * m[i] - step
        m[i] = velocity
        if nesterov:
            p[i] += momentum * velocity - step
        else:
            p[i] += velocity


@cuda.jit
def _adagrad(p, g, acc, lr, epsilon):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        grad = g[i]
        total = acc[i] + grad * grad
        acc[i] = total
        p[i] -= lr * grad / math.sqrt(total + epsilon)


@cuda.jit
def _rmsprop(p, g, vel, mom, avg, lr, rho, momentum, epsilon, centered):
    keep = 1 - rho
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        grad = g[i]
        v = rho * vel[i] + keep * grad * grad
        vel[i] = v
        if centered:
            a = rho * avg[i] + keep * grad
            avg[i] = a
            increment = lr * grad / math.sqrt(v - a * a + epsilon)
        else:
            increment = lr * grad / math.sqrt(v + epsilon)
        if momentum > 0:
            increment += momentum * mom[i]
            mom[i] = increment
        p[i] -= increment


@cuda.jit
def _adadelta(p, g, acc_grad, acc_delta, lr, rho, epsilon):
    keep = 1 - rho
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        grad = g[i]
        ag = rho * acc_grad[i] + keep * grad * grad
        acc_grad[i] = ag
        delta = -math.sqrt(acc_delta[i] + epsilon) / math.sqrt(ag + epsilon) * grad
        acc_delta[i] = rho * acc_delta[i] + keep * delta * delta
        p[i] += lr * delta


@cuda.jit
def _adam(p, g, m, v, v_hat, alpha, beta_1, beta_2, epsilon, amsgrad):
    keep_1 = 1 - beta_1
    keep_2 = 1 - beta_2
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        grad = g[i]
        mi = m[i] + (grad - m[i]) * keep_1
        vi = v[i] + (grad * grad - v[i]) * keep_2
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vh = max(v_hat[i], vi)
            v_hat[i] = vh
            p[i] -= alpha * mi / (math.sqrt(vh) + epsilon)
        else:
            p[i] -= alpha * mi / (math.sqrt(vi) + epsilon)


@cuda.jit
def _decay(p, factor):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        p[i] -= factor * p[i]


@cuda.jit
def _clip_value(g, limit):
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        g[i] = min(max(g[i], -limit), limit)


@cached_factory
def _segment_norm_kernel(threads):
    """One block per segment: a shared-memory tree sum of squares, then the block rescales its segment."""

    @cuda.jit
    def clip_segments(g, offsets, max_norm):
        partial = cuda.shared.array(threads, np.float64)
        scale_slot = cuda.shared.array(1, np.float64)
        k = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        start = offsets[k]
        stop = offsets[k + 1]
        total = 0.0
        for i in range(start + tid, stop, threads):
            total += float(g[i]) * float(g[i])
        partial[tid] = total
        block_sum(partial, tid)
        if tid == 0:
            norm = math.sqrt(partial[0])
            scale_slot[0] = max_norm / norm if norm > max_norm else 1.0
        cuda.syncthreads()
        scale = scale_slot[0]
        if scale != 1.0:
            for i in range(start + tid, stop, threads):
                g[i] *= scale

    return clip_segments


def sgd_step(p, g, lr):
    """``p -= lr g``."""
    if p.shape[0]:
        _sgd[grid(p.shape[0]), block()](p, g, lr)


def momentum_step(p, g, m, lr, momentum, nesterov):
    """``m = momentum m - lr g``; ``p += m``, or ``p += momentum m - lr g`` (Nesterov)."""
    if p.shape[0]:
        _momentum[grid(p.shape[0]), block()](p, g, m, lr, momentum, nesterov)


def adagrad_step(p, g, acc, lr, epsilon):
    """``acc += g^2``; ``p -= lr g / sqrt(acc + epsilon)``."""
    if p.shape[0]:
        _adagrad[grid(p.shape[0]), block()](p, g, acc, lr, epsilon)


def rmsprop_step(p, g, vel, mom, avg, lr, rho, momentum, epsilon, centered):
    """RMSprop, optionally centered and with momentum (see the CPU twin)."""
    if p.shape[0]:
        _rmsprop[grid(p.shape[0]), block()](p, g, vel, mom, avg, lr, rho, momentum, epsilon, centered)


def adadelta_step(p, g, acc_grad, acc_delta, lr, rho, epsilon):
    """Adadelta (see the CPU twin)."""
    if p.shape[0]:
        _adadelta[grid(p.shape[0]), block()](p, g, acc_grad, acc_delta, lr, rho, epsilon)


def adam_step(p, g, m, v, v_hat, alpha, beta_1, beta_2, epsilon, amsgrad):
    """Adam / AMSGrad with the bias correction folded into ``alpha`` by the caller."""
    if p.shape[0]:
        _adam[grid(p.shape[0]), block()](p, g, m, v, v_hat, alpha, beta_1, beta_2, epsilon, amsgrad)


def decay_weights(p, factor):
    """``p -= factor p``."""
    if p.shape[0]:
        _decay[grid(p.shape[0]), block()](p, factor)


def clip_by_value(g, limit):
    """``g = clip(g, -limit, limit)`` in place."""
    if g.shape[0]:
        _clip_value[grid(g.shape[0]), block()](g, limit)


def clip_segments_by_norm(g, offsets, max_norm):
    """Scale each segment ``g[offsets[k]:offsets[k+1]]`` to L2 norm at most ``max_norm``, in place.

    ``offsets`` may be a host array (it is copied over) or a device array.
    """
    segments = offsets.shape[0] - 1
    if segments <= 0:
        return
    if isinstance(offsets, np.ndarray):
        offsets = cuda.to_device(offsets)
    threads = tree_threads()
    _segment_norm_kernel(threads)[segments, threads](g, offsets, float(max_norm))
