"""Reused work buffers: one allocation per shape family, views for every batch after."""

import numpy as np


class BufferPool:
    """Named buffers that grow to the largest batch seen and are sliced for smaller ones."""

    def __init__(self):
        self._stored = {}

    def get(self, key, shape, dtype):
        """A ``shape`` view of buffer ``key`` (C-contiguous: only the leading axis is sliced)."""
        stored = self._stored.get(key)
        if stored is None or stored.dtype != dtype or stored.shape[1:] != tuple(shape[1:]) or stored.shape[0] < shape[0]:
            stored = np.empty(shape, dtype=dtype)
            self._stored[key] = stored
        return stored[: shape[0]]

    def clear(self):
        self._stored.clear()
