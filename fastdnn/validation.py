"""Input checks for public entry points: run once, before any kernel, with errors that name the argument.

Kernels do no bounds checking, so everything a kernel will index with (shapes, label values) is
checked here. Each error says which argument, what was expected and what was received.
"""

import numbers

import numpy as np

from fastdnn.kernels.cpu.data import all_finite


def describe(value):
    """Short description of a received value for error messages."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def to_array(value, name):
    """Convert lists and array-likes to an ndarray of a real numeric or boolean dtype."""
    if value is None:
        raise TypeError(f"{name}: expected an array of numbers, received None")
    if isinstance(value, np.ndarray):
        array = value
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as error:
            raise TypeError(f"{name}: expected an array of numbers, received {describe(value)} ({error})") from None
    if array.dtype == object or array.dtype.kind not in "biuf":
        received = describe(value) if isinstance(value, np.ndarray) else f"{describe(value)} of dtype {array.dtype}"
        raise TypeError(f"{name}: expected an array of real numbers, received {received}{_strings_hint(array)}")
    return array


def _strings_hint(array):
    """For text (class names as strings, most often): how to give them to a model."""
    is_text = array.dtype.kind in "US" or (array.dtype == object and any(isinstance(v, str) for v in array.reshape(-1)[:100]))
    if not is_text:
        return ""
    return (
        "; encode class labels given as strings as integers 0..k-1 first (classes, y = np.unique(y, "
        "return_inverse=True), or sklearn.preprocessing.LabelEncoder), or use fd.wrappers.SKLearnClassifier, "
        "which accepts any labels"
    )


def check_finite(array, name):
    """Raise if ``array`` (float) holds NaN or infinity, naming the first offending position."""
    if array.dtype.kind != "f":
        return
    if array.dtype in (np.float32, np.float64):
        flat = array.reshape(-1) if array.flags.c_contiguous else np.ascontiguousarray(array).reshape(-1)
        finite = all_finite(flat)  # no temporary boolean array for the common types
    else:
        finite = bool(np.isfinite(array).all())  # float16, longdouble: rare, NumPy is fine
    if finite:
        return
    bad = np.argwhere(~np.isfinite(array))
    position = tuple(int(i) for i in bad[0])
    raise ValueError(
        f"{name}: expected finite values, received {len(bad)} NaN or infinite value(s), "
        f"the first at index {position} ({array[position]})"
    )


def float_array(value, name, dtype, min_ndim=1):
    """Validated C-contiguous float array of ``dtype``: non-empty, finite, at least ``min_ndim`` axes.

    An array that is already C-contiguous and of ``dtype`` is returned as is, without a copy.
    """
    array = to_array(value, name)
    if array.ndim < min_ndim:
        raise ValueError(f"{name}: expected an array with at least {min_ndim} dimension(s), received {describe(array)}")
    if array.size == 0:
        raise ValueError(f"{name}: expected at least one value, received an empty array of shape {array.shape}")
    check_finite(array, name)
    array = np.ascontiguousarray(array, dtype=dtype)
    # float64 -> float32 can overflow to inf even when the input was finite.
    if array.dtype.kind == "f":
        check_finite(array, name)
    return array


def label_array(value, name, n_classes, n_rows):
    """Validated integer class labels of shape ``(n_rows,)`` in ``[0, n_classes)``, as int64.

    Accepts shape ``(n,)`` or ``(n, 1)``, integer arrays, and float arrays holding whole numbers.
    """
    array = to_array(value, name)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"{name}: expected integer class labels of shape ({n_rows},) or ({n_rows}, 1) for a sparse "
            f"crossentropy, received {describe(array)}"
        )
    if array.shape[0] != n_rows:
        raise ValueError(f"{name}: expected {n_rows} labels (one per sample), received {array.shape[0]}")
    if array.dtype.kind == "f":
        check_finite(array, name)
        if not np.all(array == np.round(array)):
            raise ValueError(f"{name}: expected whole-number class labels, received non-integer values")
    labels = np.ascontiguousarray(array, dtype=np.int64)
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= n_classes:
            bad = low if low < 0 else high
            raise ValueError(
                f"{name}: expected class labels in [0, {n_classes}) for an output of {n_classes} units, "
                f"received label {bad}"
            )
    return labels


def positive_int(value, name):
    """An ``int`` (not bool) greater than zero."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive integer, received {describe(value)}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive integer, received {value}")
    return int(value)


def real_number(value, name, low=None, high=None, low_inclusive=True, high_inclusive=True):
    """A finite real number (not bool) within the given bounds, as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, received {describe(value)}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, received {value}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{name}: expected a number in {interval}, received {value}")
    return value


def boolean(value, name):
    """A ``bool`` (or NumPy bool)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, received {describe(value)}")
    return bool(value)


def shape_tuple(value, name):
    """A tuple of positive ints (a sample shape, without the batch axis)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"{name}: expected a non-empty tuple of positive integers, received {describe(value)}")
    return tuple(positive_int(dim, f"{name}[{i}]") for i, dim in enumerate(value))


def int_tuple(value, name, length):
    """A tuple of ``length`` positive ints from an int (repeated) or a sequence (``kernel_size=3``)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,) * length
    if not isinstance(value, (tuple, list)) or len(value) != length:
        raise TypeError(f"{name}: expected a positive integer or a tuple of {length} positive integers, received {describe(value)}")
    return tuple(positive_int(v, f"{name}[{i}]") for i, v in enumerate(value))


def choice(value, name, options):
    """``value`` if it is one of ``options`` (strings compared in lower case)."""
    key = value.lower() if isinstance(value, str) else value
    if key not in options:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, options))}, received {value!r}")
    return key


def index_array(value, name, size, min_ndim=1, what="indices"):
    """Validated integer indices in ``[0, size)`` as a C-contiguous int64 array.

    Accepts integer arrays and float arrays holding whole numbers; the error for an index out of
    range names the first offending value and its position.
    """
    array = to_array(value, name)
    if array.ndim < min_ndim:
        raise ValueError(f"{name}: expected {what} with at least {min_ndim} dimension(s), received {describe(array)}")
    if array.size == 0:
        raise ValueError(f"{name}: expected at least one index, received an empty array of shape {array.shape}")
    if array.dtype.kind == "f":
        check_finite(array, name)
        if not np.all(array == np.round(array)):
            raise ValueError(f"{name}: expected whole-number {what}, received non-integer values")
    elif array.dtype.kind == "b":
        raise TypeError(f"{name}: expected integer {what}, received a boolean array")
    indices = np.ascontiguousarray(array, dtype=np.int64)
    outside = (indices < 0) | (indices >= size)
    if outside.any():
        position = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(
            f"{name}: expected {what} in [0, {size}), received {int(indices[position])} at position {position} "
            f"({int(outside.sum())} out of range)"
        )
    return indices
