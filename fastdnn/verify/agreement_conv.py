"""CPU-vs-CUDA agreement cases of the convolution kernels (``kernels/*/conv.py``), for `fastdnn.verify.agreement`.

Every public function, at small shapes, across the geometry branches: 2-D valid (patches inside
the input: the CPU's contiguous-copy path), 2-D same with stride 2 and odd sizes, 2-D same with
dilation, 1-D causal with dilation and 1-D strided; activations that do and do not need the
pre-activation, softmax, no bias, a fused (linear) gradient, and ``compute_dx`` off and on.
"""

import numpy as np


def geometries():
    """``(label, input shape (n, H, W, C), (kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow))``."""
    from fastdnn.layers.conv import padding_amounts

    specs = [
        # label, (n, H, W, C), (kh, kw), (sh, sw), (dh, dw), padding
        ("2d valid", (2, 4, 3, 1), (3, 2), (1, 1), (1, 1), "valid"),
        ("2d same stride 2", (1, 5, 5, 2), (3, 3), (2, 2), (1, 1), "same"),
        ("2d same dilation 2", (1, 5, 3, 1), (2, 3), (1, 1), (2, 1), "same"),
        ("1d causal dilation 2", (2, 1, 6, 2), (1, 3), (1, 1), (1, 2), "causal"),
        ("1d valid stride 3", (2, 1, 8, 2), (1, 2), (1, 3), (1, 1), "valid"),
    ]
    for label, shape, (kh, kw), (sh, sw), (dh, dw), padding in specs:
        if label.startswith("1d"):
            pad_top, oh = 0, 1
        else:
            pad_top, oh = padding_amounts(shape[1], kh, sh, dh, padding)
        pad_left, ow = padding_amounts(shape[2], kw, sw, dw, padding)
        yield label, shape, (kh, kw, sh, sw, dh, dw, pad_top, pad_left, oh, ow)


def cases(rng, dtype, n, d, k):
    """Yield ``(name, family, function, args, output positions)`` as `fastdnn.verify.agreement._cases` does.

    The shapes are fixed per geometry and small (the simulator runs every CUDA thread as a Python
    thread), so ``n``, ``d`` and ``k`` are not used.
    """
    from fastdnn.kernels.cpu import activation as act
    from fastdnn.kernels.cpu import conv

    def arr(*shape):
        return rng.uniform(-2.0, 2.0, size=shape).astype(dtype)

    alpha = np.dtype(dtype).type(0.2)
    empty = np.empty(0, dtype)
    filters = 3
    activations = (("relu", act.RELU), ("elu", act.ELU), ("softmax", act.SOFTMAX), ("linear", act.LINEAR))
    for index, (label, shape, geometry) in enumerate(geometries()):
        batch, H, W, C = shape
        kh, kw, _, _, _, _, _, _, oh, ow = geometry
        rows, patch = batch * oh * ow, kh * kw * C
        x = arr(*shape)
        yield f"im2col[{label}]", "conv", "im2col", [x, *geometry, np.full((rows, patch), 7.0, dtype)], [len(geometry) + 1]
        yield f"col2im[{label}]", "conv", "col2im", [arr(rows, patch), *geometry, np.full(shape, 7.0, dtype)], [len(geometry) + 1]
        # one activation per geometry for forward and backward, every one across the geometries
        tag, code = activations[index % len(activations)]
        with_bias = index % 2 == 0
        bias = arr(filters) if with_bias else empty
        K = arr(patch, filters)
        at = 5 + len(geometry)  # position of cols in conv_forward's arguments
        yield (f"conv_forward[{label},{tag}{'' if with_bias else ',no bias'}]", "conv", "conv_forward",
               [x, K, bias, code, alpha, *geometry, np.zeros((rows, patch), dtype), np.zeros((rows, filters), dtype),
                np.zeros((rows, filters), dtype)],
               [at, at + 1, at + 2])
        cols = np.zeros((rows, patch), dtype)
        conv.im2col(x, *geometry, cols)
        z = (cols @ K + (bias if with_bias else 0)).astype(dtype)
        y = np.empty_like(z)
        act.activation_forward(code, z, alpha, y)
        for compute_dx in (False, True):
            db = np.zeros(filters, dtype) if with_bias else empty
            dcols = np.zeros((rows, patch), dtype) if compute_dx else np.empty((0, 0), dtype)
            dX = np.zeros(shape, dtype) if compute_dx else np.empty((0, 0, 0, 0), dtype)
            at = 7 + len(geometry)  # position of dLdZ in conv_backward's arguments
            yield (f"conv_backward[{label},{tag}{'' if with_bias else ',no bias'},compute_dx={compute_dx}]", "conv",
                   "conv_backward",
                   [cols, K, z, y, arr(rows, filters), code, alpha, *geometry, np.zeros((rows, filters), dtype),
                    np.zeros((patch, filters), dtype), db, dcols, dX, compute_dx],
                   [at, at + 1, at + 2, at + 3, at + 4])
