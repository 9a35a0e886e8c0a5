"""Agreement cases of the dropout kernels (``fastdnn.kernels.cuda.dropout`` against the CPU twins).

The uniform draws are given (host randoms copied over), so the masks are the same on both sides;
the device's own draws (`fill_uniform`) have no CPU twin and are tested statistically in
``tests/cuda_sim/test_cuda_embedding_dropout_norm.py``.
"""

import numpy as np


def cases(rng, dtype, n, d, k):
    """Yield ``(name, family, function, args, output positions)`` in the format of `fastdnn.verify.agreement._cases`."""
    scalar = np.dtype(dtype).type
    size = n * d
    x = rng.uniform(-2.0, 2.0, size=size).astype(dtype)
    for rate in (0.0, 0.3, 0.75):
        u = rng.uniform(0.0, 1.0, size=size).astype(dtype)
        u[0] = scalar(rate)  # u == rate keeps the element (">="), on both sides
        yield (f"dropout_forward[rate={rate}]", "dropout", "dropout_forward",
               [x, u, scalar(rate), scalar(1.0 / (1.0 - rate)), np.zeros(size, dtype)], [1, 4])
    mask = np.where(rng.uniform(size=size) >= 0.4, 1.0 / 0.6, 0.0).astype(dtype)
    yield "dropout_backward", "dropout", "dropout_backward", [rng.uniform(-2.0, 2.0, size=size).astype(dtype), mask, np.zeros(size, dtype)], [2]
