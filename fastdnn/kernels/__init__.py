"""Compiled kernels: ``cpu`` (numba ``@njit``), and later ``cuda`` twins with the same names."""
