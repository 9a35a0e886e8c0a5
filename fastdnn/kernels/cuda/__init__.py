"""numba.cuda twins of ``fastdnn.kernels.cpu``: same module names, same function names, same signatures.

Each public function here is a host-side launcher taking device arrays (and scalars) in the order of
its CPU twin and writing its outputs in place, so that layer and optimizer code runs unchanged on
either family. Importing this package needs ``numba-cuda`` (the ``cuda`` extra).
"""
