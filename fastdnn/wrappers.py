"""scikit-learn estimators around fastdnn models, with Keras 3's names and signature.

``SKLearnClassifier`` and ``SKLearnRegressor`` (``keras.wrappers.SKLearnClassifier`` /
``SKLearnRegressor``) make a compiled model an estimator that works in ``Pipeline``,
``GridSearchCV``, ``cross_val_score`` and ``clone``::

    def build(X, y, hidden=32):
        model = fd.Sequential([fd.layers.Dense(hidden, activation="relu", input_shape=X.shape[1:]),
                               fd.layers.Dense(y.shape[1], activation="softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    clf = fd.wrappers.SKLearnClassifier(build, model_kwargs={"hidden": 64}, fit_kwargs={"epochs": 30})
    cross_val_score(make_pipeline(StandardScaler(), clf), X, y)

Only the model's public API is used: ``compile``'s ``loss``, ``fit``, ``predict``. Needs scikit-learn
1.6 or later (``pip install 'fastdnn[sklearn]'``).
"""

import numpy as np

import numbers

from fastdnn import losses, random, validation
from fastdnn.model import Model
from fastdnn.saving import clone_model
from fastdnn.utils import to_categorical

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils.multiclass import type_of_target
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError:  # the wrappers then refuse to be constructed, with the install command
    BaseEstimator = ClassifierMixin = RegressorMixin = object
    _SKLEARN_MISSING = True
else:
    _SKLEARN_MISSING = False

__all__ = ["SKLearnClassifier", "SKLearnRegressor"]


class _SKLearnBase(BaseEstimator):
    """What both wrappers share: building or cloning the model, fit arguments, validation of X.

    Parameters
    ----------
    model : Model or callable
        A compiled model (`fastdnn.Sequential` or a functional `fastdnn.Model` with one input and one
        output), cloned (fresh weights, same compile settings) before each fit unless
        ``warm_start``; or a callable ``model(X=X, y=y, **model_kwargs)`` returning a compiled model.
        A classifier's callable receives ``y`` one-hot encoded (``y.shape[1]`` is the number of
        classes), as in Keras.
    warm_start : bool
        Keep training the model of the previous ``fit`` instead of starting again.
    model_kwargs : dict, optional
        Keyword arguments for a callable ``model`` (grid-searchable as ``model_kwargs``).
    fit_kwargs : dict, optional
        Keyword arguments for ``model.fit`` (``epochs``, ``batch_size``, ...); those given to ``fit``
        itself take precedence. ``verbose`` defaults to 0 here: scikit-learn estimators are silent.
    random_state : int, numpy RandomState or Generator, optional
        Not in Keras's signature (scikeras has it): seeds fastdnn's generator for the model's
        construction and fit (initial weights, shuffling), so that two fits give the same model,
        without changing what the rest of the program draws. None uses fastdnn's generator as it is.

    Attributes
    ----------
    model_ : Model
        The fitted model.
    history_ : History
        What ``model.fit`` returned.
    n_features_in_ : int
    """

    def __init__(self, model, warm_start=False, model_kwargs=None, fit_kwargs=None, random_state=None):
        if _SKLEARN_MISSING:
            raise ImportError(f"{type(self).__name__} needs scikit-learn 1.6 or later: pip install 'fastdnn[sklearn]'")
        self.model = model
        self.warm_start = warm_start
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Without random_state each fit draws fresh initial weights from fastdnn's generator: two fits
        # of the same data give different (equally good) models.
        tags.non_deterministic = self.random_state is None
        return tags

    def _seed(self):
        """The seed for this fit: random_state itself, or drawn from a NumPy generator given as random_state."""
        state = self.random_state
        if state is None or (isinstance(state, numbers.Integral) and not isinstance(state, bool) and state >= 0):
            return state
        if isinstance(state, np.random.RandomState):
            return int(state.randint(2**31 - 1))
        if isinstance(state, np.random.Generator):
            return int(state.integers(2**31 - 1))
        raise ValueError(f"random_state: expected None, a non-negative integer, a RandomState or a Generator, received {state!r}")

    def fit(self, X, y, **kwargs):
        """Fit on ``(X, y)``; ``kwargs`` go to ``model.fit`` (over ``fit_kwargs``). Returns ``self``."""
        X, y = self._validated_data(X, y)
        with random.seeded(self._seed()):
            model = self._get_model(X, self._builder_targets(y))
            if not model.built:
                model.build(X.shape[1:])
            targets = self._targets(model, y)
            arguments = {"verbose": 0, **(self.fit_kwargs or {}), **kwargs}
            self.history_ = model.fit(X, targets, **arguments)
        self.model_ = model
        return self

    def _get_model(self, X, y):
        if self.warm_start and hasattr(self, "model_"):
            return self.model_
        if isinstance(self.model, Model):
            if self.model_kwargs:
                raise ValueError(f"model_kwargs: only used when model is a callable, but model is a {type(self.model).__name__} instance")
            model = clone_model(self.model)
        elif callable(self.model):
            model = self.model(X=X, y=y, **(self.model_kwargs or {}))
        else:
            raise TypeError(f"model: expected a compiled fastdnn model or a callable returning one, received {validation.describe(self.model)}")
        if not isinstance(model, Model):
            raise TypeError(f"model: the callable returned {validation.describe(model)}, expected a compiled fastdnn model")
        if model.built and (len(model.inputs) != 1 or len(model.outputs) != 1):
            raise ValueError(
                f"model: a scikit-learn estimator has one X and one y, so the model needs one input and one output; "
                f"received {len(model.inputs)} inputs {model.input_names} and {len(model.outputs)} outputs {model.output_names}"
            )
        if not model.compiled:
            raise ValueError("model: the model is not compiled; call model.compile(optimizer=..., loss=...) before returning it")
        return model

    def _validated_x(self, X, reset):
        return validate_data(self, X, reset=reset, dtype=(np.float32, np.float64))

    def _model_outputs(self, X):
        check_is_fitted(self, "model_")
        X = self._validated_x(X, reset=False)
        return self.model_.predict(X)


class SKLearnClassifier(ClassifierMixin, _SKLearnBase):
    """A scikit-learn classifier around a fastdnn model (``keras.wrappers.SKLearnClassifier``).

    Class labels may be any sortable values (strings, integers); ``classes_`` holds them in the
    order of the model's outputs. The targets given to the model follow its loss:
    ``sparse_categorical_crossentropy`` gets class indices, ``binary_crossentropy`` on one sigmoid
    unit gets 0/1 (two classes), any other loss the one-hot rows. ``predict_proba`` returns one column
    per class (``[1 - p, p]`` for a single sigmoid unit; probabilities also for a ``from_logits`` loss).

    Parameters are those of the Keras wrapper: see ``_SKLearnBase``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    model_, history_, n_features_in_
    """

    def _validated_data(self, X, y):
        """X as floats, y as class indices (``classes_`` set on a fresh fit)."""
        X, y = validate_data(self, X, y, dtype=(np.float32, np.float64))
        y = column_or_1d(y, warn=True)
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"y: expected class labels (binary or multiclass targets), received {kind} targets")
        if not (self.warm_start and hasattr(self, "model_")):
            encoder = LabelEncoder().fit(y)
            if len(encoder.classes_) < 2:
                raise ValueError(f"y: expected at least 2 classes, received one class ({encoder.classes_[0]!r}) only")
            self._encoder = encoder
            self.classes_ = encoder.classes_
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y: classes {unseen.tolist()} were not among the first fit's classes {self.classes_.tolist()} (warm_start)")
        return X, self._encoder.transform(y)

    def _builder_targets(self, codes):
        return to_categorical(codes, len(self.classes_))

    def _targets(self, model, codes):
        """The targets in the form the model's loss expects, after checking the output width."""
        width, n_classes = model.output_shape[-1], len(self.classes_)
        if isinstance(model.loss, losses.BinaryCrossentropy) and model.output_shape == (1,):
            if n_classes != 2:
                raise ValueError(
                    f"model: one output unit with binary_crossentropy separates 2 classes, received {n_classes} classes; "
                    f"use {n_classes} softmax units"
                )
            return codes.reshape(-1, 1).astype(np.float32)
        if model.output_shape != (n_classes,):
            raise ValueError(
                f"model: expected an output of shape ({n_classes},) for {n_classes} classes, received a model whose "
                f"output has shape {model.output_shape}"
            )
        return codes if model.loss.sparse else self._builder_targets(codes)

    def predict_proba(self, X):
        """Class probabilities of shape (n_samples, n_classes), columns in the order of ``classes_``."""
        outputs = np.asarray(self._model_outputs(X), dtype=np.float64)
        loss = self.model_.loss
        if outputs.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-outputs)) if loss.from_logits else outputs
            return np.hstack([1.0 - p, p])
        if loss.from_logits:
            shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        return outputs

    def predict(self, X):
        """The most probable class of each sample, as one of ``classes_``."""
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]


class SKLearnRegressor(RegressorMixin, _SKLearnBase):
    """A scikit-learn regressor around a fastdnn model (``keras.wrappers.SKLearnRegressor``).

    ``y`` of shape (n,) is fitted to a model with one output unit and ``predict`` returns shape
    (n,); a 2-D ``y`` (several targets) needs one output unit per column.

    Parameters are those of the Keras wrapper: see ``_SKLearnBase``.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _validated_data(self, X, y):
        X, y = validate_data(self, X, y, dtype=(np.float32, np.float64), y_numeric=True, multi_output=True)
        self._y_ndim = y.ndim
        return X, y

    def _builder_targets(self, y):
        return y

    def _targets(self, model, y):
        targets = y.reshape(-1, 1) if y.ndim == 1 else y
        if model.output_shape != targets.shape[1:]:
            raise ValueError(
                f"model: expected an output of shape {targets.shape[1:]} for y of shape {y.shape}, received a model "
                f"whose output has shape {model.output_shape}"
            )
        return targets

    def predict(self, X):
        """Predictions of shape (n_samples,) for a 1-D ``y`` at fit time, else (n_samples, n_targets)."""
        outputs = self._model_outputs(X)
        outputs = outputs.astype(np.float64)  # scikit-learn's regressors predict float64
        return outputs.reshape(-1) if self._y_ndim == 1 else outputs
