"""Losses: a registry of names -> Loss classes calling the kernels in ``kernels/cpu/loss.py``.

===================================== =========================================================
name (aliases)                        per-sample loss, averaged over the batch
===================================== =========================================================
mean_squared_error (mse)              mean_j (p_j - t_j)^2
mean_absolute_error (mae)             ``mean_j |p_j - t_j|``
binary_crossentropy                   mean_j -(t_j log p_j + (1 - t_j) log(1 - p_j))
categorical_crossentropy              -sum_j t_j log p_j           (t one-hot or soft labels)
sparse_categorical_crossentropy       -log p_label                 (t integer class labels)
===================================== =========================================================

Crossentropies take ``from_logits=True`` for raw scores. With ``from_logits=False`` after a softmax
(categorical) or sigmoid (binary) output layer, a model fuses the two: it computes the loss from the
layer's logits in the stable form and hands the layer ``dL/dz = (y - t) / n`` directly.
"""

import numpy as np

from fastdnn import validation
from fastdnn.kernels.cpu import loss as kernels
from fastdnn.registry import Registry

registry = Registry("loss")


class Loss:
    """Base class. ``loss(y_true, y_pred)`` -> mean loss; ``loss.gradient(y_true, y_pred)`` -> dL/dy_pred.

    Subclasses set ``kernel`` (and ``logits_kernel`` for crossentropies), ``sparse`` when targets
    are integer labels, and ``fused_activation`` (the output activation whose logits the loss can
    take directly).
    """

    name = None
    kernel = None
    logits_kernel = None
    sparse = False
    fused_activation = None

    def __init__(self, from_logits=False):
        self.from_logits = validation.boolean(from_logits, "from_logits")
        if self.from_logits and self.logits_kernel is None:
            raise ValueError(f"from_logits: {self.name} has no logits form; received True")

    # -- targets -------------------------------------------------------------------------------

    def prepare_targets(self, y, output_shape, n_rows, dtype, name="y"):
        """Validate targets for predictions of sample shape ``output_shape``; return the kernel's form.

        Sparse losses get int64 labels of shape ``(rows,)``; the others a float array with one row per
        prediction row (2-D, last axis ``output_shape[-1]``).
        """
        width = output_shape[-1]
        rows = n_rows * int(np.prod(output_shape[:-1], dtype=np.int64))
        if self.sparse:
            labels = validation.label_array(_flatten_label_axes(y, output_shape, name), name, width, rows)
            return labels
        targets = validation.float_array(y, name, dtype)
        received = targets.shape
        if targets.ndim == len(output_shape):  # (n,) targets for a (n, 1) output
            targets = targets.reshape(targets.shape + (1,))
        expected = (n_rows, *output_shape)
        if targets.shape != expected:
            raise ValueError(
                f"{name}: expected targets of shape {expected} for {self.name}, received an array of shape "
                f"{received}{self._labels_hint(targets, width, name)}"
            )
        return targets.reshape(rows, width)

    def _labels_hint(self, targets, width, name):
        """For integer class labels given to a loss that wants one row per sample: the two ways out."""
        if self.name != "categorical_crossentropy" or targets.shape[-1] != 1:
            return ""
        if not np.all(targets == np.round(targets)) or targets.min() < 0 or targets.max() >= width:
            return ""
        return (
            f"; {name} holds integer class labels: use loss='sparse_categorical_crossentropy', or one-hot encode "
            f"them with fd.utils.to_categorical({name}, {width})"
        )

    # -- kernels (trusted inputs) --------------------------------------------------------------

    def compute(self, y_pred, targets, grad, with_grad=True):
        """Mean loss of 2-D predictions (or logits, with ``from_logits``) against prepared targets."""
        kernel = self.logits_kernel if self.from_logits else self.kernel
        return kernel(y_pred, targets, grad, with_grad)

    def compute_from_logits(self, logits, targets, grad, with_grad=True):
        """Mean loss of the logits of a fused output activation; ``grad`` receives ``dL/dz``."""
        return self.logits_kernel(logits, targets, grad, with_grad)

    def compute_weighted(self, y_pred, targets, grad, row_weights, fused=False, with_grad=True):
        """Keras's weighted reduction ("sum_over_batch_size"): ``sum_r w_r l_r / R`` over the ``R`` rows
        of ``y_pred`` (the logits of a fused output activation when ``fused``), where ``l_r`` is the loss
        of row ``r`` alone; ``grad`` receives its gradient. The sum is divided by the number of rows,
        not by the sum of the weights, so a row of weight 2 counts as that row given twice.
        """
        kernel = self.logits_kernel if (fused or self.from_logits) else self.kernel
        return kernels.weighted_rows(kernel, y_pred, targets, grad, row_weights, with_grad)

    # -- public, validating entry points -------------------------------------------------------

    def _validated(self, y_true, y_pred):
        dtype = y_pred.dtype if isinstance(y_pred, np.ndarray) and y_pred.dtype == np.float64 else np.float32
        predictions = validation.float_array(y_pred, "y_pred", dtype)
        if predictions.ndim == 1:
            predictions = predictions.reshape(-1, 1)
        if not self.from_logits:
            self._check_prediction_range(predictions)
        targets = self.prepare_targets(y_true, predictions.shape[1:], predictions.shape[0], dtype, name="y_true")
        return predictions, targets

    def _check_prediction_range(self, predictions):
        pass

    def __call__(self, y_true, y_pred):
        """Mean loss over the batch (Keras's ``sum_over_batch_size`` reduction)."""
        predictions, targets = self._validated(y_true, y_pred)
        flat = predictions.reshape(-1, predictions.shape[-1])
        return float(self.compute(flat, targets, flat, with_grad=False))

    def gradient(self, y_true, y_pred):
        """``dL/dy_pred`` (with respect to the logits when ``from_logits``), shaped like ``y_pred``."""
        predictions, targets = self._validated(y_true, y_pred)
        grad = np.empty_like(predictions)
        flat = predictions.reshape(-1, predictions.shape[-1])
        self.compute(flat, targets, grad.reshape(flat.shape), with_grad=True)
        return grad.reshape(np.shape(y_pred)) if np.ndim(y_pred) == 1 else grad

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits} if self.logits_kernel is not None else {"name": self.name}

    def __repr__(self):
        return f"<loss {self.name}{' from_logits' if self.from_logits else ''}>"


def _flatten_label_axes(y, output_shape, name):
    """Labels for a (n, ..., k) output arrive as (n, ...) or (n, ..., 1): flatten to one per row."""
    array = validation.to_array(y, name)
    if len(output_shape) > 1:
        array = array.reshape(-1)
    return array


class _ProbabilityLoss(Loss):
    """Crossentropies on probabilities: predictions outside [0, 1] are a usage error, not a number."""

    def _check_prediction_range(self, predictions):
        low, high = float(predictions.min()), float(predictions.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"y_pred: expected probabilities in [0, 1] for {self.name}, received values in [{low:g}, {high:g}]; "
                f"pass from_logits=True for raw scores"
            )


@registry.register("mean_squared_error", "mse")
class MeanSquaredError(Loss):
    name = "mean_squared_error"
    kernel = staticmethod(kernels.mean_squared_error)

    def __init__(self):
        super().__init__(from_logits=False)


@registry.register("mean_absolute_error", "mae")
class MeanAbsoluteError(Loss):
    name = "mean_absolute_error"
    kernel = staticmethod(kernels.mean_absolute_error)

    def __init__(self):
        super().__init__(from_logits=False)


@registry.register("binary_crossentropy", "bce")
class BinaryCrossentropy(_ProbabilityLoss):
    name = "binary_crossentropy"
    kernel = staticmethod(kernels.binary_crossentropy)
    logits_kernel = staticmethod(kernels.binary_crossentropy_from_logits)
    fused_activation = "sigmoid"


@registry.register("categorical_crossentropy", "cce")
class CategoricalCrossentropy(_ProbabilityLoss):
    name = "categorical_crossentropy"
    kernel = staticmethod(kernels.categorical_crossentropy)
    logits_kernel = staticmethod(kernels.categorical_crossentropy_from_logits)
    fused_activation = "softmax"


@registry.register("sparse_categorical_crossentropy", "scce")
class SparseCategoricalCrossentropy(_ProbabilityLoss):
    name = "sparse_categorical_crossentropy"
    kernel = staticmethod(kernels.sparse_categorical_crossentropy)
    logits_kernel = staticmethod(kernels.sparse_categorical_crossentropy_from_logits)
    sparse = True
    fused_activation = "softmax"


def get(identifier):
    """A loss from a name, a `Loss` instance, or a config dict ``{"name": ..., "from_logits": ...}``."""
    return registry.resolve(identifier, Loss, "a fastdnn.losses.Loss")
