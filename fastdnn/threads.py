"""Thread counts for both pools that run fastdnn's work: numba's kernels and the BLAS under them.

Numba's ``np.dot`` calls scipy's OpenBLAS; NumPy carries its own copy. Both are reached through
their exported ``*_set_num_threads`` symbols, the way threadpoolctl does, without depending on it.
"""

import ctypes
import glob
import os

import numba
import numpy as np

from fastdnn import validation

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)


def _openblas_libraries():
    import scipy

    folders = []
    for module in (np, scipy):
        root = os.path.dirname(os.path.dirname(module.__file__))
        folders.append(os.path.join(root, f"{module.__name__}.libs"))
        folders.append(os.path.join(os.path.dirname(module.__file__), ".dylibs"))
    libraries = []
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "*openblas*"))):
            try:
                libraries.append(ctypes.CDLL(path))
            except OSError:
                continue
    return libraries


def _first_symbol(library, names):
    for name in names:
        function = getattr(library, name, None)
        if function is not None:
            return function
    return None


def set_num_threads(n):
    """Use ``n`` threads in numba's parallel kernels and in the BLAS matrix products.

    Parameters
    ----------
    n : int
        At least 1 and at most ``numba.config.NUMBA_NUM_THREADS`` (the cores numba saw at start).
    """
    n = validation.positive_int(n, "n")
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise ValueError(f"n: expected at most {limit} threads (NUMBA_NUM_THREADS), received {n}")
    numba.set_num_threads(n)
    for library in _openblas_libraries():
        setter = _first_symbol(library, _SETTERS)
        if setter is not None:
            setter.argtypes = [ctypes.c_int]
            setter(n)


def get_num_threads():
    """``{"numba": n, "blas": [n per OpenBLAS library found]}``."""
    blas = []
    for library in _openblas_libraries():
        getter = _first_symbol(library, _GETTERS)
        if getter is not None:
            getter.restype = ctypes.c_int
            blas.append(int(getter()))
    return {"numba": numba.get_num_threads(), "blas": blas}
