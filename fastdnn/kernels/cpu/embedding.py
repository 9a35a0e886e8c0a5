"""Embedding kernels: a row gather forward, a scatter-add backward.

Forward:  y[k] = E[index[k]]
Backward: dL/dE = 0, then dL/dE[index[k]] += dL/dy[k] for every k (an index used twice collects both)

Indices are trusted: the layer checks them against ``[0, input_dim)`` before any kernel runs.
"""

from fastdnn.kernels.jit import jit


@jit
def embedding_forward(index, E, y):
    """``y[k, :] = E[index[k], :]`` (``index`` (m,) int64, ``E`` (V, D), ``y`` (m, D))."""
    D = E.shape[1]
    for k in range(index.shape[0]):
        row = E[index[k]]
        out = y[k]
        for j in range(D):
            out[j] = row[j]


@jit
def embedding_backward(index, dLdY, dE):
    """``dE = 0``; ``dE[index[k], :] += dL/dy[k, :]``."""
    D = dE.shape[1]
    dE[...] = 0
    for k in range(index.shape[0]):
        row = dE[index[k]]
        g = dLdY[k]
        for j in range(D):
            row[j] += g[j]
