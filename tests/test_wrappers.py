"""fd.wrappers: scikit-learn's own estimator checks, and the tools users combine the wrappers with."""

import functools
import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastdnn as fd  # noqa: E402
from fastdnn.wrappers import SKLearnClassifier, SKLearnRegressor  # noqa: E402


def mlp_classifier(X, y, hidden=16, loss="categorical_crossentropy", learning_rate=0.02):
    """The Keras-wrapper habit: the output width comes from the one-hot y."""
    model = fd.Sequential([
        fd.layers.Dense(hidden, activation="relu", input_shape=X.shape[1:]),
        fd.layers.Dense(y.shape[1], activation="softmax"),
    ])
    model.compile(optimizer=fd.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"])
    return model


def mlp_regressor(X, y, hidden=16, learning_rate=0.02):
    model = fd.Sequential([
        fd.layers.Dense(hidden, activation="relu", input_shape=X.shape[1:]),
        fd.layers.Dense(1 if y.ndim == 1 else y.shape[1]),
    ])
    model.compile(optimizer=fd.optimizers.Adam(learning_rate), loss="mse")
    return model


class _Named:
    """A model-building function whose repr is its name: the test ids scikit-learn derives from the
    estimators' reprs must be the same in every pytest-xdist worker (a function's repr has its address)."""

    def __init__(self, function):
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self):
        return self.__name__


# scikit-learn runs ~50 checks on each (fits on odd shapes, dtypes, NaNs, sparse input, pickling,
# pipelines, sample-order invariance, idempotent fits with random_state, pandas input, ...). None is
# marked as an expected failure; the only skip is scikit-learn's own array-API check, which runs only
# with SCIPY_ARRAY_API=1 set before SciPy is imported.
@parametrize_with_checks([
    SKLearnClassifier(_Named(mlp_classifier), fit_kwargs={"epochs": 30}, random_state=0),
    SKLearnRegressor(_Named(mlp_regressor), fit_kwargs={"epochs": 30}, random_state=0),
])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]  # string labels
    return X, names


def test_classifier_with_string_labels_in_a_pipeline(iris):
    X, y = iris
    clf = make_pipeline(StandardScaler(), SKLearnClassifier(mlp_classifier, fit_kwargs={"epochs": 60}, random_state=1))
    clf.fit(X, y)
    estimator = clf[-1]
    assert estimator.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert set(clf.predict(X)) <= set(estimator.classes_)
    probabilities = clf.predict_proba(X)
    assert probabilities.shape == (150, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(estimator.classes_[probabilities.argmax(axis=1)], clf.predict(X))
    assert clf.score(X, y) > 0.9
    assert estimator.n_features_in_ == 4 and len(estimator.history_.history["loss"]) == 60


def test_cross_val_score_and_grid_search(iris):
    X, y = iris
    pipeline = make_pipeline(StandardScaler(), SKLearnClassifier(mlp_classifier, fit_kwargs={"epochs": 40}, random_state=0))
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    search = GridSearchCV(
        pipeline,
        {"sklearnclassifier__model_kwargs": [{"hidden": 4}, {"hidden": 16}], "sklearnclassifier__fit_kwargs": [{"epochs": 40}]},
        cv=2,
    )
    search.fit(X, y)
    assert search.best_params_["sklearnclassifier__model_kwargs"] in ({"hidden": 4}, {"hidden": 16})
    assert len(search.cv_results_["mean_test_score"]) == 2


@pytest.mark.parametrize(
    "loss, output",
    [
        ("sparse_categorical_crossentropy", fd.layers.Dense(2, activation="softmax")),
        ("binary_crossentropy", fd.layers.Dense(1, activation="sigmoid")),
        (fd.losses.BinaryCrossentropy(from_logits=True), fd.layers.Dense(1)),
        (fd.losses.CategoricalCrossentropy(from_logits=True), fd.layers.Dense(2)),
    ],
)
def test_classifier_gives_each_loss_its_target_form(loss, output):
    """A compiled model instance (cloned per fit) with each loss; predict_proba is always probabilities."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    labels = np.where(y == 1, "benign", "malignant")
    model = fd.Sequential([fd.layers.Dense(8, activation="relu", input_shape=(30,)), output])
    model.compile(optimizer=fd.optimizers.Adam(0.01), loss=loss)
    clf = SKLearnClassifier(model, fit_kwargs={"epochs": 10}, random_state=0).fit(X, labels)
    assert clf.model_ is not model  # cloned, as Keras's wrapper clones
    probabilities = clf.predict_proba(X)
    assert probabilities.shape == (len(X), 2)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert clf.score(X, labels) > 0.9


def test_clone_gives_an_unfitted_estimator_with_equal_parameters(iris):
    X, y = iris
    clf = SKLearnClassifier(mlp_classifier, model_kwargs={"hidden": 8}, fit_kwargs={"epochs": 5}, random_state=3).fit(X, y)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "model_")
    np.testing.assert_array_equal(copy.fit(X, y).predict_proba(X), clf.predict_proba(X))  # same random_state


def test_random_state_does_not_change_what_the_program_draws_next(iris):
    X, y = iris
    fd.set_seed(5)
    expected = fd.random.generator().random(3)
    fd.set_seed(5)
    SKLearnClassifier(mlp_classifier, fit_kwargs={"epochs": 2}, random_state=0).fit(X, y)
    np.testing.assert_array_equal(fd.random.generator().random(3), expected)


def test_warm_start_continues_training_the_same_model(iris):
    X, y = iris
    clf = SKLearnClassifier(mlp_classifier, warm_start=True, fit_kwargs={"epochs": 3}, random_state=0)
    clf.fit(X, y)
    first = clf.model_
    weights = [w.copy() for w in first.get_weights()]
    clf.fit(X, y)
    assert clf.model_ is first
    assert any(not np.array_equal(a, b) for a, b in zip(weights, first.get_weights()))
    with pytest.raises(ValueError, match=r"classes \['other'\] were not among the first fit's classes"):
        clf.fit(X[:2], np.array(["setosa", "other"]))


def test_regressor_on_diabetes_and_pickle_round_trip():
    X, y = load_diabetes(return_X_y=True)
    reg = make_pipeline(StandardScaler(), SKLearnRegressor(mlp_regressor, fit_kwargs={"epochs": 100, "batch_size": 16}, random_state=0))
    reg.fit(X, (y - y.mean()) / y.std())
    predictions = reg.predict(X)
    assert predictions.shape == (len(X),) and predictions.dtype == np.float64
    assert reg.score(X, (y - y.mean()) / y.std()) > 0.4
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), predictions)


def test_regressor_with_several_targets():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    Y = np.stack([X[:, 0] - X[:, 1], 2 * X[:, 2]], axis=1)
    reg = SKLearnRegressor(mlp_regressor, fit_kwargs={"epochs": 200}, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (64, 2)
    assert reg.score(X, Y) > 0.8


def test_bad_models_are_refused_by_name(iris):
    X, y = iris
    with pytest.raises(TypeError, match="model: expected a compiled fastdnn model or a callable"):
        SKLearnClassifier(model=42).fit(X, y)
    with pytest.raises(TypeError, match="model: the callable returned"):
        SKLearnClassifier(model=lambda X, y: "not a model").fit(X, y)
    uncompiled = fd.Sequential([fd.layers.Dense(3, activation="softmax", input_shape=(4,))])
    with pytest.raises(ValueError, match="model: the model is not compiled"):
        SKLearnClassifier(model=lambda X, y: uncompiled).fit(X, y)
    narrow = fd.Sequential([fd.layers.Dense(2, activation="softmax", input_shape=(4,))])
    narrow.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"model: expected an output of shape \(3,\) for 3 classes, received a model whose output has shape \(2,\)"):
        SKLearnClassifier(narrow).fit(X, y)
    with pytest.raises(ValueError, match="model_kwargs: only used when model is a callable"):
        SKLearnClassifier(narrow, model_kwargs={"hidden": 3}).fit(X, y)
    with pytest.raises(ValueError, match="y: expected at least 2 classes, received one class"):
        SKLearnClassifier(mlp_classifier).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="random_state: expected None, a non-negative integer"):
        SKLearnClassifier(mlp_classifier, random_state="seed").fit(X, y)


def test_fit_kwargs_are_passed_on_and_fit_arguments_take_precedence(iris):
    X, y = iris
    clf = SKLearnClassifier(mlp_classifier, fit_kwargs={"epochs": 2, "batch_size": 150}, random_state=0)
    clf.fit(X, y, epochs=4)
    assert len(clf.history_.history["loss"]) == 4
    assert clf.fit_kwargs == {"epochs": 2, "batch_size": 150}  # not modified by fit


def test_clone_model_gives_fresh_weights_and_the_same_compile_settings():
    from fastdnn.saving import clone_model

    model = fd.Sequential([fd.layers.Dense(4, activation="relu", input_shape=(3,)), fd.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=fd.optimizers.Adam(0.005, amsgrad=True), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    clone = clone_model(model)
    assert clone is not model and clone.get_config() == model.get_config()
    assert clone.optimizer.get_config() == model.optimizer.get_config() and clone.loss.get_config() == model.loss.get_config()
    assert clone.metrics_names == model.metrics_names
    assert any(not np.array_equal(a, b) for a, b in zip(clone.get_weights(), model.get_weights()))
    with pytest.raises(TypeError, match="model: expected a fastdnn model"):
        clone_model("model")


def _functional_classifier(n_features, n_classes):
    """A functional model (a skip connection: not a chain) with one input and one output."""
    x = fd.Input((n_features,), name="features")
    h = fd.layers.Dense(16, activation="relu")(x)
    y = fd.layers.Dense(n_classes, activation="softmax")(fd.layers.Concatenate()([x, h]))
    model = fd.Model(x, y)
    model.compile(optimizer=fd.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_functional_model_in_the_classifier_and_in_cross_validation(iris):
    X, y = iris
    model = _functional_classifier(4, 3)
    clf = SKLearnClassifier(model, fit_kwargs={"epochs": 60, "batch_size": 16}, random_state=0)
    pipeline = make_pipeline(StandardScaler(), clf).fit(X, y)
    assert pipeline.score(X, y) > 0.9
    fitted = pipeline[-1].model_
    assert type(fitted) is fd.Model and fitted is not model  # a clone was trained, the given model untouched
    assert any(not np.array_equal(a, b) for a, b in zip(fitted.get_weights(), model.get_weights()))
    assert cross_val_score(make_pipeline(StandardScaler(), clf), X, y, cv=3).mean() > 0.8
    callable_clf = SKLearnClassifier(lambda X, y: _functional_classifier(X.shape[1], y.shape[1]), fit_kwargs={"epochs": 2}, random_state=0)
    assert callable_clf.fit(X, y).predict_proba(X).shape == (150, 3)


def test_a_model_with_two_inputs_or_outputs_is_refused_by_name(iris):
    X, y = iris
    a, b = fd.Input((2,), name="a"), fd.Input((2,), name="b")
    two_inputs = fd.Model([a, b], fd.layers.Dense(3, activation="softmax")(fd.layers.Add()([a, b])))
    two_inputs.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"model: a scikit-learn estimator has one X and one y, so the model needs one input and one output; received 2 inputs \['a', 'b'\]"):
        SKLearnClassifier(two_inputs).fit(X, y)


def test_clone_model_of_a_functional_model_with_a_shared_layer():
    from fastdnn.saving import clone_model

    a, b = fd.Input((3,), name="a"), fd.Input((3,), name="b")
    shared = fd.layers.Dense(4, activation="tanh", name="shared")
    model = fd.Model([a, b], {"diff": fd.layers.Subtract()([shared(a), shared(b)]), "score": fd.layers.Dense(1)(shared(a))})
    model.compile(optimizer="adam", loss={"diff": "mse", "score": "mae"}, loss_weights={"diff": 1.0, "score": 0.5}, metrics={"score": ["mae"]})
    clone = clone_model(model)
    assert type(clone) is fd.Model and clone.get_config() == model.get_config()
    assert clone.input_names == model.input_names and clone.output_names == model.output_names
    assert clone.metrics_names == model.metrics_names and clone.compile_config() == model.compile_config()
    assert len(clone.layers) == len(model.layers)  # the shared layer is still one layer
    assert any(not np.array_equal(p, q) for p, q in zip(clone.get_weights(), model.get_weights()))
    rng = np.random.default_rng(0)
    xs = {"a": rng.normal(size=(8, 3)), "b": rng.normal(size=(8, 3))}
    ys = {"diff": rng.normal(size=(8, 4)), "score": rng.normal(size=(8, 1))}
    clone.set_weights(model.get_weights())
    assert clone.evaluate(xs, ys, return_dict=True) == pytest.approx(model.evaluate(xs, ys, return_dict=True))
