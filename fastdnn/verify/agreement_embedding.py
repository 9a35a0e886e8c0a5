"""Agreement cases of the embedding kernels (``fastdnn.kernels.cuda.embedding`` against the CPU twins).

The indices repeat on purpose: the backward pass must add every occurrence (atomically on the GPU).
"""

import numpy as np


def cases(rng, dtype, n, d, k):
    """Yield ``(name, family, function, args, output positions)`` in the format of `fastdnn.verify.agreement._cases`."""
    vocabulary = k
    index = rng.integers(0, vocabulary, size=2 * n).astype(np.int64)
    index[1] = index[0]  # at least one row gathered and scattered twice
    E = rng.uniform(-2.0, 2.0, size=(vocabulary, d)).astype(dtype)
    yield "embedding_forward", "embedding", "embedding_forward", [index, E, np.zeros((2 * n, d), dtype)], [2]
    dLdY = rng.uniform(-2.0, 2.0, size=(2 * n, d)).astype(dtype)
    dE = np.full((vocabulary, d), 7.0, dtype)  # stale values: the kernel must zero the rows no index hits
    yield "embedding_backward", "embedding", "embedding_backward", [index, dLdY, dE], [2]
    same = np.zeros(n, np.int64)  # every position on one row: the most colliding scatter
    yield "embedding_backward[one row]", "embedding", "embedding_backward", [same, dLdY[:n], dE], [2]
