"""CPU kernels by family. Kernels trust their inputs: callers validate shapes, dtypes and ranges."""
