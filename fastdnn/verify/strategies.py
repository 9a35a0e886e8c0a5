"""Hypothesis strategies: batch shapes, ordinary and extreme values, probabilities with their bounds."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

#: Largest magnitude used for "extreme" logits and activations inputs.
EXTREME = 1e4


def batch_shapes(max_rows=8, max_columns=12):
    """``(rows, columns)`` with a batch of 1 and a single column among the possibilities."""
    return st.tuples(st.integers(1, max_rows), st.integers(1, max_columns))


def real_values(extreme=EXTREME):
    """Floats representable in float32: mostly moderate, with the extremes and 0 drawn often."""
    moderate = st.floats(-50.0, 50.0, allow_nan=False, width=32)
    wide = st.floats(-extreme, extreme, allow_nan=False, width=32)
    edges = st.sampled_from([0.0, -0.0, extreme, -extreme, 100.0, -100.0, 1e-30, -1e-30])
    return st.one_of(moderate, wide, edges)


def real_arrays(shape, extreme=EXTREME):
    return hnp.arrays(np.float64, shape, elements=real_values(extreme))


def probability_arrays(shape):
    """Probabilities in [0, 1], the bounds 0 and 1 themselves included often."""
    elements = st.one_of(st.floats(0.0, 1.0, width=32), st.sampled_from([0.0, 1.0]))
    return hnp.arrays(np.float64, shape, elements=elements)


def distributions(shape):
    """Rows of non-negative values with a positive sum, normalised to sum to 1 (zeros allowed)."""
    elements = st.one_of(st.floats(0.0, 1.0, width=32), st.just(0.0))
    return hnp.arrays(np.float64, shape, elements=elements).filter(lambda a: np.all(a.sum(axis=-1) > 1e-6)).map(
        lambda a: a / a.sum(axis=-1, keepdims=True)
    )


def gradient_arrays(shape, low=1e-3, high=1e3):
    """Gradients with magnitudes between ``low`` and ``high`` and random signs."""
    magnitude = st.floats(low, high)
    sign = st.sampled_from([-1.0, 1.0])
    return hnp.arrays(np.float64, shape, elements=st.builds(lambda m, s: m * s, magnitude, sign))
