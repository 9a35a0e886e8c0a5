"""Dense (fully connected) kernels: BLAS for the products, everything around them fused.

Forward:   z = x W + b,  y = f(z)
Backward:  dL/dz = dL/dy * f'(z),  dL/dW = x^T dL/dz,  dL/db = sum_rows dL/dz,  dL/dx = dL/dz W^T

The products are ``np.matmul(a, b, out=...)`` called from Python (through `fastdnn.threads.matmul`,
which cuts a large one into parts under a pool plan), so that they run in NumPy's BLAS:
NumPy and SciPy each carry an OpenBLAS, and ``np.dot`` inside ``@njit`` reaches SciPy's. An epoch of
the 784-512-256-10 MLP at batch 1024 took 0.90-0.92 of the time with NumPy's (0.97 at batch 128), and
one pool of BLAS threads serves every product of a model instead of two pools taking turns. So
``dense_forward`` and ``dense_backward`` are plain functions around the compiled pieces (about 1 us
each of Python per call); the products write straight into the caller's buffers, and transposed
operands are passed as views, not copies.
"""

from fastdnn.kernels.cpu.activation import BACKWARD, FORWARD, LINEAR
from fastdnn.kernels.jit import jit
from fastdnn.threads import matmul


def bias_activation(z, b, code, alpha, y):
    """In place ``z += b`` (if ``b`` is non-empty), then ``y = f(z)``; ``y`` may be ``z`` (then ``z``
    is not kept)."""
    FORWARD[code](z, b, alpha, y)


def dense_forward(x, W, b, code, alpha, z, y):
    """``z = x W + b`` and ``y = f(z)``. Pass ``z`` and ``y`` as one array when ``z`` need not be kept.

    Parameters
    ----------
    x : (n, n_in) array;  W : (n_in, n_out);  b : (n_out,) or empty for no bias
    code, alpha : activation code and slope (see ``activation``)
    z, y : (n, n_out) outputs
    """
    matmul(x, W, z)
    FORWARD[code](z, b, alpha, y)


def dense_backward(x, W, z, y, dLdY, code, alpha, dLdZ, dW, db, dX, compute_dx):
    """Gradients of a Dense layer, written into ``dLdZ``, ``dW``, ``db`` (if non-empty), ``dX``.

    With ``code == LINEAR``, ``dLdY`` is used as ``dL/dz`` directly and ``dLdZ`` is not touched;
    this is also how a loss fused with the output activation hands in ``dL/dz``.
    ``dX`` is only written when ``compute_dx`` (the first layer of a model needs no input gradient).
    """
    if code == LINEAR:
        g = dLdY
    else:
        BACKWARD[code](z, y, dLdY, alpha, dLdZ)
        g = dLdZ
    matmul(x.T, g, dW)
    if db.shape[0] > 0:
        column_sums(g, db)
    if compute_dx:
        matmul(g, W.T, dX)


@jit
def column_sums(a, out):
    """``out[j] = sum_i a[i, j]`` (row-major walk, so the inner loop vectorizes)."""
    n, d = a.shape
    out[:] = 0
    for i in range(n):
        for j in range(d):
            out[j] += a[i, j]
