"""Training quality on scikit-learn's bundled datasets: standardized features, a held-out quarter."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastdnn as fd


def _split(data, target, stratify=True):
    x_train, x_test, y_train, y_test = train_test_split(
        data, target, test_size=0.25, random_state=0, stratify=target if stratify else None
    )
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_test), y_train, y_test


def test_digits_mlp_reaches_96_percent():
    x_train, x_test, y_train, y_test = _split(*load_digits(return_X_y=True))
    model = fd.Sequential([fd.layers.Dense(64, activation="relu", input_shape=(64,)), fd.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=50, validation_split=0.1, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test)
    assert accuracy >= 0.96


def test_breast_cancer_sigmoid_net_reaches_95_percent():
    x_train, x_test, y_train, y_test = _split(*load_breast_cancer(return_X_y=True))
    model = fd.Sequential([fd.layers.Dense(16, activation="relu", input_shape=(30,)), fd.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "precision", "recall"])
    model.fit(x_train, y_train, batch_size=32, epochs=60, verbose=0)
    logs = model.evaluate(x_test, y_test, return_dict=True)
    assert logs["accuracy"] >= 0.95
    assert logs["precision"] > 0.9 and logs["recall"] > 0.9


def test_diabetes_regression_reaches_r2_of_0_3():
    x_train, x_test, y_train, y_test = _split(*load_diabetes(return_X_y=True), stratify=False)
    mean, std = y_train.mean(), y_train.std()
    # A noisy, small dataset (linear regression scores 0.36 on this split): a small tanh net, plain SGD.
    model = fd.Sequential([fd.layers.Dense(16, activation="tanh", input_shape=(10,)), fd.layers.Dense(1)])
    model.compile(optimizer=fd.optimizers.SGD(learning_rate=0.01), loss="mse", metrics=["mae"])
    model.fit(x_train, (y_train - mean) / std, batch_size=32, epochs=50, verbose=0)
    predictions = model.predict(x_test)[:, 0] * std + mean
    assert r2_score(y_test, predictions) >= 0.3


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nag", "adagrad", "rmsprop", "adadelta", "adam"])
def test_every_optimizer_reduces_the_training_loss_on_digits(optimizer):
    x_train, _, y_train, _ = _split(*load_digits(return_X_y=True))
    model = fd.Sequential([fd.layers.Dense(64, activation="relu", input_shape=(64,)), fd.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    start = model.evaluate(x_train, y_train)
    model.fit(x_train, y_train, batch_size=32, epochs=5, verbose=0)
    end = model.evaluate(x_train, y_train)
    assert end < start
    assert np.isfinite(end)
