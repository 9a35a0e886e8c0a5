"""The one decorator every CPU kernel uses, so that flags come from `fastdnn.config` alone."""

import numba

from fastdnn import config


def jit(func=None, **overrides):
    """``numba.njit`` with fastdnn's fastmath flags, on-disk cache and released GIL.

    ``nogil`` lets several Python threads run kernels at once (``predict`` from threads).
    """
    options = {"fastmath": config.FASTMATH, "cache": config.CACHE, "nogil": True}
    options.update(overrides)
    if func is None:
        return numba.njit(**options)
    return numba.njit(**options)(func)
