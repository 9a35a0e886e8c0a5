"""Agreement cases of the dropout kernels (``fastdnn.kernels.cuda.dropout`` against the CPU twins).

The masks are counter-based (a hash of the step's stream word and each element's global position),
so the device must draw the CPU's masks exactly: from the first element of a batch, and from an
offset, as a data-parallel process's shard does.
"""

import numpy as np


def cases(rng, dtype, n, d, k):
    """Yield ``(name, family, function, args, output positions)`` in the format of `fastdnn.verify.agreement._cases`."""
    scalar = np.dtype(dtype).type
    size = n * d
    x = rng.uniform(-2.0, 2.0, size=size).astype(dtype)
    for rate, first in ((0.0, 0), (0.3, 0), (0.75, 3 * d)):
        stream = np.uint64(rng.integers(0, 2**63)) * np.uint64(2) + np.uint64(1)  # the top bit set too
        yield (f"dropout_forward[rate={rate}, first={first}]", "dropout", "dropout_forward",
               [x, stream, first, scalar(rate), scalar(1.0 / (1.0 - rate)), np.zeros(size, dtype), np.zeros(size, dtype)], [5, 6])
    mask = np.where(rng.uniform(size=size) >= 0.4, 1.0 / 0.6, 0.0).astype(dtype)
    yield "dropout_backward", "dropout", "dropout_backward", [rng.uniform(-2.0, 2.0, size=size).astype(dtype), mask, np.zeros(size, dtype)], [2]
