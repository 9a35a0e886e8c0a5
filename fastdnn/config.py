"""Library-wide settings: float type, fastmath flags, compile cache, device.

Settings that shape compiled kernels (fastmath, cache) are read once, when the kernel modules are
imported, so they come from environment variables:

- ``FASTDNN_FASTMATH``: comma-separated LLVM fast-math flags, ``0`` or ``none`` for strict IEEE.
  ``nnan`` and ``ninf`` are refused: they would let the compiler delete the NaN checks that
  ``TerminateOnNaN`` and the input validation rely on.
- ``FASTDNN_NUM_THREADS``: an integer pins the thread count of the BLAS and numba's kernels (as
  ``fastdnn.set_num_threads`` does); unset or ``auto``, fastdnn chooses it while training (see
  ``fastdnn.threads``). ``FASTDNN_THREAD_PROBE_STEPS``, ``FASTDNN_THREAD_PROBE_OVERHEAD`` and
  ``FASTDNN_THREAD_RECHECK_SECONDS`` tune that choice.
- ``FASTDNN_CACHE``: ``0`` disables numba's on-disk cache of compiled kernels (on by default, so
  only the first run on a machine pays the compile time).

``floatx`` can be changed at run time with :func:`set_floatx`; it applies to models built after.
"""

import os

import numpy as np

_DEFAULT_FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})
_ALLOWED_FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc", "afn"})


def _fastmath_from_env():
    raw = os.environ.get("FASTDNN_FASTMATH")
    if raw is None:
        return set(_DEFAULT_FASTMATH)
    raw = raw.strip().lower()
    if raw in ("", "0", "none", "false", "off"):
        return False
    flags = {flag.strip() for flag in raw.split(",") if flag.strip()}
    unknown = flags - _ALLOWED_FASTMATH
    if unknown:
        raise ValueError(
            f"FASTDNN_FASTMATH: expected a subset of {sorted(_ALLOWED_FASTMATH)} "
            f"(nnan/ninf are never allowed), received {sorted(unknown)}"
        )
    return flags


#: Fast-math flags given to every CPU kernel (a set of LLVM flag names, or False).
FASTMATH = _fastmath_from_env()

#: Whether compiled kernels are cached on disk between processes.
CACHE = os.environ.get("FASTDNN_CACHE", "1").strip().lower() not in ("0", "false", "off", "no")


def _num_threads_from_env():
    raw = os.environ.get("FASTDNN_NUM_THREADS", "auto").strip().lower()
    if raw in ("", "auto"):
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"FASTDNN_NUM_THREADS: expected a positive integer or 'auto', received {raw!r}")
    return int(raw)


#: A thread count pinned from the environment, or None: fastdnn chooses (``fastdnn.threads``).
NUM_THREADS = _num_threads_from_env()

#: Timed steps per candidate thread count in each block of a probe (each count gets two blocks).
THREAD_PROBE_STEPS = int(os.environ.get("FASTDNN_THREAD_PROBE_STEPS", "4"))

#: Share of the training time that probing the other thread counts may cost.
THREAD_PROBE_OVERHEAD = float(os.environ.get("FASTDNN_THREAD_PROBE_OVERHEAD", "0.05"))

#: Longest wait, in seconds, between two probes while the choice holds (unless probing costs more).
THREAD_RECHECK_SECONDS = float(os.environ.get("FASTDNN_THREAD_RECHECK_SECONDS", "30"))

_FLOATX = "float32"
_SUPPORTED_FLOATX = ("float32", "float64")


def floatx():
    """Return the default float type of parameters and activations, as a string."""
    return _FLOATX


def set_floatx(value):
    """Set the default float type (``"float32"`` or ``"float64"``) for models built afterwards."""
    global _FLOATX
    name = np.dtype(value).name if _is_dtype_like(value) else value
    if name not in _SUPPORTED_FLOATX:
        raise ValueError(f"floatx: expected one of {_SUPPORTED_FLOATX}, received {value!r}")
    _FLOATX = name


def _is_dtype_like(value):
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True


# -- CUDA (fastdnn.kernels.cuda) -----------------------------------------------------------------
# Read when a CUDA kernel is first launched at a given size, so tests may patch them small.

#: Threads per block of the elementwise and row-wise CUDA kernels.
CUDA_BLOCK = int(os.environ.get("FASTDNN_CUDA_BLOCK", "256"))

#: Side of the square shared-memory tiles of the numba.cuda matrix product.
CUDA_TILE = int(os.environ.get("FASTDNN_CUDA_TILE", "16"))

#: Outputs per thread along each axis in the numba.cuda matrix product (1: the plain tiled kernel).
CUDA_GEMM_REG = int(os.environ.get("FASTDNN_CUDA_GEMM_REG", "4"))

#: Matrix products on the GPU: ``"numba"`` (fastdnn's tiled kernel) or ``"cupy"`` (cuBLAS through CuPy).
GEMM = os.environ.get("FASTDNN_GEMM", "numba").strip().lower()

_DEVICE = os.environ.get("FASTDNN_DEVICE", "cpu").strip().lower()
_SUPPORTED_DEVICES = ("cpu", "cuda")


def device():
    """Return the default device of ``Model.compile`` (``"cpu"`` or ``"cuda"``)."""
    return _DEVICE


def set_device(value):
    """Set the default device (``"cpu"`` or ``"cuda"``) of models compiled afterwards."""
    global _DEVICE
    if value not in _SUPPORTED_DEVICES:
        raise ValueError(f"device: expected one of {_SUPPORTED_DEVICES}, received {value!r}")
    _DEVICE = value
