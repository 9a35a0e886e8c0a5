"""The one decorator every CPU kernel uses, so that flags come from `fastdnn.config` alone."""

import numba

from fastdnn import config


def jit(func=None, **overrides):
    """``numba.njit`` with fastdnn's fastmath flags, on-disk cache and released GIL.

    ``nogil`` lets several Python threads run kernels at once (``predict`` from threads).
    ``error_model="numpy"``: a float division by zero gives inf/NaN as in NumPy instead of a Python
    ZeroDivisionError check, whose branch would stop LLVM from vectorizing every loop that divides.
    """
    options = {"fastmath": config.FASTMATH, "cache": config.CACHE, "nogil": True, "error_model": "numpy"}
    options.update(overrides)
    if func is None:
        return numba.njit(**options)
    return numba.njit(**options)(func)


class KernelsByKey(dict):
    """Kernels compiled on first use, one per key: ``table[key]`` is ``build(key)``, built once.

    For kernels specialized on a constant (an activation code): a model compiles only the ones it uses.
    A dict lookup, so the hot path pays no more than a call through ``functools.lru_cache`` would.
    """

    def __init__(self, build):
        super().__init__()
        self.build = build

    def __missing__(self, key):
        kernel = self[key] = self.build(key)
        return kernel
