import numpy as np
import pytest
from sklearn import metrics as skm

import fastdnn as fd
from fastdnn.verify import reference


def _probabilities(rng, n, k):
    p = rng.uniform(size=(n, k))
    return p / p.sum(axis=1, keepdims=True)


def test_accuracies_match_reference(rng):
    p = _probabilities(rng, 50, 4)
    labels = rng.integers(0, 4, 50)
    one_hot = np.eye(4)[labels]
    assert fd.metrics.SparseCategoricalAccuracy()(labels, p) == pytest.approx(reference.accuracy("sparse", labels, p))
    assert fd.metrics.CategoricalAccuracy()(one_hot, p) == pytest.approx(reference.accuracy("categorical", one_hot, p))
    binary = rng.uniform(size=(50, 1))
    truth = rng.integers(0, 2, (50, 1)).astype(float)
    assert fd.metrics.BinaryAccuracy()(truth, binary) == pytest.approx(reference.accuracy("binary", truth, binary))


def test_precision_recall_match_scikit_learn(rng):
    p = rng.uniform(size=(200, 1))
    truth = rng.integers(0, 2, (200, 1))
    predicted = (p > 0.5).astype(int)
    assert fd.metrics.Precision()(truth, p) == pytest.approx(skm.precision_score(truth, predicted))
    assert fd.metrics.Recall()(truth, p) == pytest.approx(skm.recall_score(truth, predicted))
    # multi-class: each probability is a decision against the one-hot target (micro average)
    probs = _probabilities(rng, 100, 3) * 1.6
    labels = rng.integers(0, 3, 100)
    decisions = (probs > 0.5).astype(int)
    one_hot = np.eye(3, dtype=int)[labels]
    expected = skm.precision_score(one_hot, decisions, average="micro")
    assert fd.metrics.Precision()(labels, probs) == pytest.approx(expected)
    assert fd.metrics.Precision()(one_hot, probs) == pytest.approx(expected)
    assert fd.metrics.Recall()(labels, probs) == pytest.approx(skm.recall_score(one_hot, decisions, average="micro"))


def test_regression_metrics_and_accumulation(rng):
    a, b = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    c, d = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    mse = fd.metrics.get("mse")
    mse.update_state(a, b)
    mse.update_state(c, d)
    assert mse.result() == pytest.approx(np.mean(np.concatenate([(a - b) ** 2, (c - d) ** 2])))
    mse.reset_state()
    assert mse.result() == 0.0
    assert fd.metrics.get("mae")(a, b) == pytest.approx(skm.mean_absolute_error(a, b))


def test_accuracy_is_resolved_from_the_loss():
    resolve = fd.metrics.get
    assert isinstance(resolve("accuracy", loss=fd.losses.get("binary_crossentropy")), fd.metrics.BinaryAccuracy)
    assert isinstance(resolve("accuracy", loss=fd.losses.get("sparse_categorical_crossentropy")), fd.metrics.SparseCategoricalAccuracy)
    assert isinstance(resolve("acc", loss=fd.losses.get("categorical_crossentropy")), fd.metrics.CategoricalAccuracy)
    assert isinstance(resolve("accuracy", loss=fd.losses.get("mse"), output_width=1), fd.metrics.BinaryAccuracy)
    assert resolve("accuracy", loss=fd.losses.get("cce")).name == "accuracy"


def test_metric_errors():
    with pytest.raises(ValueError, match="unknown metric 'f1'.*accuracy"):
        fd.metrics.get("f1")
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        fd.metrics.SparseCategoricalAccuracy()([5], [[0.2, 0.3, 0.5]])
    with pytest.raises(ValueError, match="y_true: expected shape"):
        fd.metrics.CategoricalAccuracy()([[1, 0]], [[0.2, 0.3, 0.5]])


def test_every_metric_option_matches_an_independent_value(rng):
    """Thresholds other than 0.5, counted here with NumPy and scikit-learn."""
    p = rng.uniform(size=(300, 2))
    truth = rng.integers(0, 2, (300, 2)).astype(float)
    for threshold in (0.2, 0.5, 0.8):
        expected = np.mean((p > threshold) == (truth > threshold))
        assert fd.metrics.BinaryAccuracy(threshold=threshold)(truth, p) == pytest.approx(expected)
        decisions = (p > threshold).astype(int).ravel()
        flat_truth = truth.astype(int).ravel()
        assert fd.metrics.Precision(thresholds=threshold)(truth, p) == pytest.approx(skm.precision_score(flat_truth, decisions))
        assert fd.metrics.Recall(thresholds=threshold)(truth, p) == pytest.approx(skm.recall_score(flat_truth, decisions))


METRIC_CHECKS = {
    "accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "mean_absolute_error", "mae", "mean_squared_error", "mse", "precision", "recall",
}


def test_every_registered_metric_is_checked_here():
    # the tests above compare each of these with an independent value; a new metric must join them
    assert METRIC_CHECKS == set(fd.metrics.registry.names(aliases=True))
