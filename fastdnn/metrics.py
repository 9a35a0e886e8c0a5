"""Metrics: stateful accumulators over an epoch, counting with the kernels in ``kernels/cpu/metric.py``.

``metric.update_state(y_true, y_pred)`` adds a batch, ``metric.result()`` reads the value over
everything seen since ``reset_state()``. ``"accuracy"`` in ``compile`` is resolved as Keras does:
from the loss (binary / sparse categorical / categorical crossentropy), otherwise from the shapes.
"""

import numpy as np

from fastdnn import losses, validation
from fastdnn.kernels.cpu import metric as kernels
from fastdnn.registry import Registry

registry = Registry("metric")

SPARSE = "sparse"  # integer class labels, shape (rows,)
DENSE = "dense"  # targets shaped like the predictions, (rows, width)


class Metric:
    """Base class. Subclasses set ``target_kinds`` and implement ``update``/``result``."""

    default_name = None
    target_kinds = (DENSE,)

    def __init__(self, name=None):
        self.name = name or self.default_name
        self.reset_state()

    def reset_state(self):
        raise NotImplementedError

    def update(self, y_pred, targets):
        """Add a batch of 2-D predictions and targets already in kernel form (trusted)."""
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def counts(self):
        """The accumulated state as a float64 vector (summed over data-parallel processes)."""
        raise NotImplementedError

    def set_counts(self, values):
        """Replace the accumulated state by a vector like `counts` returns."""
        raise NotImplementedError

    def device_count(self, sparse):
        """``(kind, threshold)`` of the count ``kernels/cuda/metric.py`` accumulates on the GPU for
        this metric (laid out as `counts`), or None: then its ``update`` runs on the host.
        ``sparse``: the targets are integer labels."""
        return None

    def update_state(self, y_true, y_pred):
        """Validate and add a batch. Integer labels of shape (n,) are sparse targets."""
        predictions = validation.float_array(y_pred, "y_pred", np.float64)
        if predictions.ndim == 1:
            predictions = predictions.reshape(-1, 1)
        predictions = predictions.reshape(-1, predictions.shape[-1])
        truth = validation.to_array(y_true, "y_true")
        if DENSE not in self.target_kinds:
            sparse = True
        else:
            labels_like = truth.ndim == 1 or (truth.ndim == 2 and truth.shape[1] == 1)
            sparse = SPARSE in self.target_kinds and labels_like and predictions.shape[1] > 1
        if sparse:
            targets = validation.label_array(truth, "y_true", predictions.shape[1], predictions.shape[0])
        else:
            targets = validation.float_array(truth, "y_true", np.float64).reshape(predictions.shape[0], -1)
            if targets.shape != predictions.shape:
                raise ValueError(
                    f"y_true: expected shape {predictions.shape} (like y_pred) for {self.name}, received {np.shape(y_true)}"
                )
        self.update(predictions, targets)

    def __call__(self, y_true, y_pred):
        """Update with one batch and return the running result (Keras's behaviour)."""
        self.update_state(y_true, y_pred)
        return self.result()

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return f"<metric {self.name}>"


class _CountingMetric(Metric):
    """Fraction of hits over items seen; subclasses say how to count hits and items."""

    def reset_state(self):
        self.hits = 0
        self.count = 0

    def result(self):
        return self.hits / self.count if self.count else 0.0

    def counts(self):
        return np.array([self.hits, self.count], dtype=np.float64)

    def set_counts(self, values):
        self.hits, self.count = int(values[0]), int(values[1])


@registry.register("accuracy", "acc")
class Accuracy(_CountingMetric):
    """Fraction of predictions exactly equal to the targets."""

    default_name = "accuracy"

    def update(self, y_pred, targets):
        self.hits += kernels.count_equal(y_pred, targets)
        self.count += y_pred.size

    def device_count(self, sparse):
        return "equal", 0.0


@registry.register("binary_accuracy")
class BinaryAccuracy(_CountingMetric):
    """Fraction of elements where ``y_pred > threshold`` agrees with ``y_true > threshold``."""

    default_name = "binary_accuracy"

    def __init__(self, name=None, threshold=0.5):
        self.threshold = validation.real_number(threshold, "threshold")
        super().__init__(name)

    def update(self, y_pred, targets):
        self.hits += kernels.count_binary_matches(y_pred, targets, self.threshold)
        self.count += y_pred.size

    def device_count(self, sparse):
        return "binary", self.threshold

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@registry.register("categorical_accuracy")
class CategoricalAccuracy(_CountingMetric):
    """Fraction of rows where ``argmax(y_pred) == argmax(y_true)`` (one-hot targets)."""

    default_name = "categorical_accuracy"

    def update(self, y_pred, targets):
        self.hits += kernels.count_categorical_matches(y_pred, targets)
        self.count += y_pred.shape[0]

    def device_count(self, sparse):
        return "categorical", 0.0


@registry.register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(_CountingMetric):
    """Fraction of rows where ``argmax(y_pred)`` equals the integer label."""

    default_name = "sparse_categorical_accuracy"
    target_kinds = (SPARSE,)

    def update(self, y_pred, targets):
        self.hits += kernels.count_sparse_matches(y_pred, targets)
        self.count += y_pred.shape[0]

    def device_count(self, sparse):
        return "sparse", 0.0


class _MeanErrorMetric(Metric):
    kernel = None

    def reset_state(self):
        self.total = 0.0
        self.count = 0

    def update(self, y_pred, targets):
        self.total += self.kernel(y_pred, targets)
        self.count += y_pred.size

    def result(self):
        return self.total / self.count if self.count else 0.0

    def counts(self):
        return np.array([self.total, self.count], dtype=np.float64)

    def set_counts(self, values):
        self.total, self.count = float(values[0]), int(values[1])


@registry.register("mean_squared_error", "mse")
class MeanSquaredError(_MeanErrorMetric):
    default_name = "mean_squared_error"
    kernel = staticmethod(kernels.sum_squared_error)

    def device_count(self, sparse):
        return "squared_error", 0.0


@registry.register("mean_absolute_error", "mae")
class MeanAbsoluteError(_MeanErrorMetric):
    default_name = "mean_absolute_error"
    kernel = staticmethod(kernels.sum_absolute_error)

    def device_count(self, sparse):
        return "absolute_error", 0.0


class _ConfusionMetric(Metric):
    """Precision/recall from true positive, false positive and false negative counts.

    Each element of ``y_pred`` is a decision ``y_pred > threshold`` against a 0/1 target, as in Keras;
    integer labels count as their one-hot encoding.
    """

    target_kinds = (DENSE, SPARSE)

    def __init__(self, name=None, thresholds=0.5):
        self.thresholds = validation.real_number(thresholds, "thresholds", low=0.0, high=1.0)
        super().__init__(name)

    def reset_state(self):
        self.counts_ = np.zeros(3, dtype=np.int64)  # tp, fp, fn

    def get_config(self):
        return {**super().get_config(), "thresholds": self.thresholds}

    def counts(self):
        return self.counts_.astype(np.float64)

    def set_counts(self, values):
        self.counts_[:] = np.asarray(values).astype(np.int64)

    def update(self, y_pred, targets):
        if targets.ndim == 1:
            kernels.sparse_confusion(y_pred, targets, self.thresholds, self.counts_)
        else:
            kernels.binary_confusion(y_pred, targets, self.thresholds, self.counts_)

    def device_count(self, sparse):
        return ("sparse_confusion" if sparse else "confusion"), self.thresholds


@registry.register("precision")
class Precision(_ConfusionMetric):
    """``tp / (tp + fp)``: of the positive decisions, the fraction that were right."""

    default_name = "precision"

    def result(self):
        tp, fp, _ = (int(c) for c in self.counts_)
        return tp / (tp + fp) if tp + fp else 0.0


@registry.register("recall")
class Recall(_ConfusionMetric):
    """``tp / (tp + fn)``: of the actual positives, the fraction found."""

    default_name = "recall"

    def result(self):
        tp, _, fn = (int(c) for c in self.counts_)
        return tp / (tp + fn) if tp + fn else 0.0


def get(identifier, loss=None, output_width=None):
    """A fresh metric from a name (resolving ``"accuracy"`` against ``loss``) or a `Metric` instance.

    Parameters
    ----------
    identifier : str or Metric
    loss : fastdnn.losses.Loss, optional
        The compiled loss; decides what ``"accuracy"`` means.
    output_width : int, optional
        Size of the model output's last axis, for ``"accuracy"`` when the loss does not decide.
    """
    if isinstance(identifier, Metric):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(
            f"metrics: expected names ({', '.join(registry.names())}) or fastdnn.metrics.Metric "
            f"instances, received {validation.describe(identifier)}"
        )
    cls = registry.lookup(identifier, "metrics")
    if cls is Accuracy:
        cls = _resolve_accuracy(loss, output_width)
    return cls(name=identifier)


def _resolve_accuracy(loss, output_width):
    if isinstance(loss, losses.BinaryCrossentropy):
        return BinaryAccuracy
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return SparseCategoricalAccuracy
    if isinstance(loss, losses.CategoricalCrossentropy):
        return CategoricalAccuracy
    if output_width == 1:
        return BinaryAccuracy
    return CategoricalAccuracy
