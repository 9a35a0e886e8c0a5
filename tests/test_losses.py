import numpy as np
import pytest

import fastdnn as fd
from tests.conftest import DTYPES
from fastdnn.verify import reference
from fastdnn.verify.cases import TARGET_KINDS, target_rows
from fastdnn.verify.gradcheck import numerical_gradient, relative_error

SHAPES = [(1, 1), (1, 4), (6, 1), (8, 3), (32, 10)]
TOL = {np.float32: dict(rtol=2e-5, atol=1e-7), np.float64: dict(rtol=1e-11, atol=1e-14)}


def _case(name, shape, dtype, rng, from_logits=False):
    n, d = shape
    if name in ("mean_squared_error", "mean_absolute_error"):
        return rng.normal(size=shape).astype(dtype), rng.normal(size=shape).astype(dtype)
    if from_logits:
        p = rng.normal(0, 3, size=shape)
    elif name == "binary_crossentropy":
        p = rng.uniform(0.01, 0.99, size=shape)
    else:
        p = rng.uniform(0.05, 1.0, size=shape)
        p /= p.sum(axis=1, keepdims=True)
    if name == "sparse_categorical_crossentropy":
        t = rng.integers(0, d, size=n)
    elif name == "categorical_crossentropy":
        t = np.eye(d)[rng.integers(0, d, size=n)].astype(dtype)
    else:
        t = rng.uniform(0, 1, size=shape).round().astype(dtype)
    return t, p.astype(dtype)


CASES = [
    ("mean_squared_error", False),
    ("mean_absolute_error", False),
    ("binary_crossentropy", False),
    ("binary_crossentropy", True),
    ("categorical_crossentropy", False),
    ("categorical_crossentropy", True),
    ("sparse_categorical_crossentropy", False),
    ("sparse_categorical_crossentropy", True),
]


def test_every_registered_loss_is_covered():
    assert {name for name, _ in CASES} == set(fd.losses.registry.names())


def _loss(name, from_logits):
    return fd.losses.get({"name": name, "from_logits": from_logits} if from_logits else name)


@pytest.mark.parametrize("name, from_logits", CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_value_and_gradient_match_reference(name, from_logits, dtype, shape, rng):
    if name == "sparse_categorical_crossentropy" and shape[1] == 1:
        shape = (shape[0], 2)
    t, p = _case(name, shape, dtype, rng, from_logits)
    loss = _loss(name, from_logits)
    assert loss(t, p) == pytest.approx(reference.loss(name, t, p, from_logits), rel=TOL[dtype]["rtol"])
    np.testing.assert_allclose(loss.gradient(t, p), reference.loss_gradient(name, t, p, from_logits), **TOL[dtype])


@pytest.mark.parametrize("kind", TARGET_KINDS)
@pytest.mark.parametrize("name, from_logits", [case for case in CASES if not case[0].startswith("sparse")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kind_of_target_row(name, from_logits, kind, dtype, rng):
    """One-hot, multi-hot, soft and all-zero rows: value and gradient against the reference, whose
    crossentropy does not assume rows summing to 1."""
    _, p = _case(name, (6, 4), dtype, rng, from_logits)
    t = target_rows(kind, (6, 4), rng).astype(dtype)
    loss = _loss(name, from_logits)
    expected = reference.loss(name, t, p, from_logits)
    assert loss(t, p) == pytest.approx(expected, rel=TOL[dtype]["rtol"], abs=TOL[dtype]["atol"])
    np.testing.assert_allclose(loss.gradient(t, p), reference.loss_gradient(name, t, p, from_logits), **TOL[dtype])
    if kind == "all-zero" and name.endswith("categorical_crossentropy"):
        assert expected == 0.0 and not np.any(loss.gradient(t, p))  # no target, no loss


@pytest.mark.parametrize("name, from_logits", CASES)
def test_gradient_matches_finite_differences(name, from_logits, rng):
    t, p = _case(name, (4, 3), np.float64, rng, from_logits)
    loss = _loss(name, from_logits)
    numerical = numerical_gradient(lambda: loss(t, p), p)
    assert relative_error(numerical, loss.gradient(t, p), floor=1e-3) < 1e-6


def test_fused_logits_form_equals_softmax_then_crossentropy(rng):
    z = rng.normal(size=(5, 4))
    labels = rng.integers(0, 4, size=5)
    fused = fd.losses.get({"name": "sparse_categorical_crossentropy", "from_logits": True})
    plain = fd.losses.get("sparse_categorical_crossentropy")
    probabilities = reference.softmax(z)
    assert fused(labels, z) == pytest.approx(plain(labels, probabilities), rel=1e-12)
    # chain rule through softmax gives the fused gradient
    chained = reference.activation_backward("softmax", z, plain.gradient(labels, probabilities))
    np.testing.assert_allclose(fused.gradient(labels, z), chained, rtol=1e-9, atol=1e-14)


def test_extreme_logits_give_finite_loss_and_gradient():
    z = np.array([[1e4, -1e4, 0.0]], dtype=np.float32)
    for name in ("categorical_crossentropy", "binary_crossentropy"):
        loss = fd.losses.get({"name": name, "from_logits": True})
        t = np.array([[0.0, 1.0, 0.0]], dtype=np.float32)
        value = loss(t, z)
        assert np.isfinite(value) and value > 0
        assert np.all(np.isfinite(loss.gradient(t, z)))
    scce = fd.losses.get({"name": "sparse_categorical_crossentropy", "from_logits": True})
    assert scce([1], z) == pytest.approx(2e4, rel=1e-6)


def test_probabilities_of_zero_and_one_are_clipped_not_infinite():
    bce = fd.losses.get("binary_crossentropy")
    value = bce(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert value == pytest.approx(-np.log(1e-7), rel=1e-6)
    assert np.all(bce.gradient(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) == 0.0)


def test_losses_are_non_negative(rng):
    for name, from_logits in CASES:
        t, p = _case(name, (8, 3), np.float64, rng, from_logits)
        assert _loss(name, from_logits)(t, p) >= 0.0


@pytest.mark.parametrize(
    "name, y_true, y_pred, match",
    [
        ("sparse_categorical_crossentropy", [0, 3], [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], r"labels in \[0, 3\).*received label 3"),
        ("sparse_categorical_crossentropy", [0, -1], [[0.5, 0.5], [0.2, 0.8]], "received label -1"),
        ("sparse_categorical_crossentropy", [0.5, 1], [[0.5, 0.5], [0.2, 0.8]], "whole-number"),
        ("categorical_crossentropy", [[1, 0]], [[0.2, 0.3, 0.5]], r"expected targets of shape \(1, 3\)"),
        ("categorical_crossentropy", [[1]], [[0.2, 0.3, 0.5]], "use loss='sparse_categorical_crossentropy'"),
        ("binary_crossentropy", [[1.0]], [[1.5]], r"expected probabilities in \[0, 1\].*from_logits=True"),
        ("mean_squared_error", [[1.0, np.nan]], [[1.0, 2.0]], "y_true: expected finite values"),
        ("mean_squared_error", [[1.0, 2.0]], [[1.0, np.inf]], "y_pred: expected finite values"),
    ],
)
def test_bad_targets_are_refused(name, y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        fd.losses.get(name)(np.asarray(y_true), np.asarray(y_pred))


def test_names_and_options():
    assert isinstance(fd.losses.get("mse"), fd.losses.MeanSquaredError)
    assert isinstance(fd.losses.get("mae"), fd.losses.MeanAbsoluteError)
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*mean_squared_error"):
        fd.losses.get("hinge")
    with pytest.raises(TypeError, match="from_logits"):
        fd.losses.MeanSquaredError(from_logits=True)
    with pytest.raises(TypeError, match="from_logits: expected True or False"):
        fd.losses.BinaryCrossentropy(from_logits="yes")
