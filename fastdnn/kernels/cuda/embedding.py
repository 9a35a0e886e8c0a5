"""CUDA twins of ``kernels.cpu.embedding``: a row gather forward, a scatter-add backward with atomics.

Forward:  y[k] = E[index[k]]                      (one thread per element of y)
Backward: dL/dE = 0, then dL/dE[index[k]] += dL/dy[k]  (one thread per element of dL/dy, atomic adds)

Why atomics for the backward pass: the deterministic alternative without extra buffers (the CPU
signature gives none) is one thread per element of ``dE`` scanning every index, ``V D m`` work for
a vocabulary of ``V`` rows, ``m`` positions and width ``D`` (billions of operations for an ordinary
text batch), while the scatter is ``m D`` atomic adds that rarely collide (distinct rows do not).
Consequence: when an index occurs several times in a batch, its float sums are added in an order
that the hardware picks, so float32 gradients may differ from the CPU's (and from run to run) in the
last bits, within the tolerances of ``fastdnn/verify/agreement.py``. Atomic float64 adds need compute
capability 6.0 or newer.

Indices are trusted (int64 in ``[0, V)``): the layer validates them on the host.
"""

from numba import cuda

from fastdnn.kernels.cuda._launch import block, grid


@cuda.jit
def _gather_rows(index, E, y):
    m = index.shape[0]
    D = E.shape[1]
    for e in range(cuda.grid(1), m * D, cuda.gridsize(1)):
        k = e // D
        j = e - k * D
        y[k, j] = E[index[k], j]


@cuda.jit
def _zero(a):
    V, D = a.shape
    for e in range(cuda.grid(1), V * D, cuda.gridsize(1)):
        r = e // D
        a[r, e - r * D] = 0


@cuda.jit
def _scatter_add_rows(index, dLdY, dE):
    m = index.shape[0]
    D = dE.shape[1]
    for e in range(cuda.grid(1), m * D, cuda.gridsize(1)):
        k = e // D
        j = e - k * D
        # neighbouring threads add to neighbouring columns of a row: coalesced, and two threads
        # meet on one address only where the same index occurs twice in the batch
        cuda.atomic.add(dE, (index[k], j), dLdY[k, j])


def embedding_forward(index, E, y):
    """``y[k, :] = E[index[k], :]`` (``index`` (m,) int64, ``E`` (V, D), ``y`` (m, D) device arrays)."""
    size = index.shape[0] * E.shape[1]
    if size:
        _gather_rows[grid(size), block()](index, E, y)


def embedding_backward(index, dLdY, dE):
    """``dE = 0``; ``dE[index[k], :] += dL/dy[k, :]`` by atomic adds (summation order not fixed)."""
    if dE.size:
        _zero[grid(dE.size), block()](dE)
    size = index.shape[0] * dE.shape[1]
    if size:
        _scatter_add_rows[grid(size), block()](index, dLdY, dE)
