"""Data utilities with Keras's names: ``fd.utils.to_categorical``."""

import numbers

import numpy as np

from fastdnn import validation


def to_categorical(x, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels, as ``keras.utils.to_categorical`` does.

    A trailing axis of length 1 is dropped first (labels of shape ``(n, 1)`` give ``(n, num_classes)``),
    then a last axis of length ``num_classes`` is appended::

        to_categorical([0, 2, 1]) == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]

    Parameters
    ----------
    x : array-like of int
        Class labels in ``[0, num_classes)``, of any shape; floats must hold whole numbers.
    num_classes : int, optional
        Number of classes; ``max(x) + 1`` when None.
    dtype : str or dtype
        Dtype of the result (Keras 3 returns floats; ``"float32"`` here, fastdnn's floatx).

    Returns
    -------
    ndarray of shape ``x.shape (less a trailing 1) + (num_classes,)``
    """
    labels = validation.to_array(x, "x")
    if labels.dtype.kind == "b":
        raise TypeError("x: expected integer class labels, received a boolean array (use x.astype(int))")
    if labels.size == 0:
        raise ValueError(f"x: expected at least one class label, received an empty array of shape {labels.shape}")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes <= 0:
            raise ValueError(f"num_classes: expected a positive integer or None, received {num_classes!r}")
        num_classes = int(num_classes)
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise TypeError(f"dtype: expected a numeric dtype, received {dtype}")
    shape = labels.shape[:-1] if labels.ndim > 1 and labels.shape[-1] == 1 else labels.shape
    if num_classes is None:
        # Inferred from the largest label; negative labels are then refused like any other out of range.
        num_classes = max(int(labels.max()) + 1, 1)
    flat = validation.index_array(labels.reshape(-1), "x", num_classes, what="class labels")
    categorical = np.zeros((flat.shape[0], num_classes), dtype=dtype)
    categorical[np.arange(flat.shape[0]), flat] = 1
    return categorical.reshape(*shape, num_classes)
