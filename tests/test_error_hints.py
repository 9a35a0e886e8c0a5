"""Errors for the two most common target mistakes say what was passed and how to fix it."""

import re

import numpy as np
import pytest

import fastdnn as fd


@pytest.fixture
def classifier():
    model = fd.Sequential([fd.layers.Dense(3, activation="softmax", input_shape=(4,))])
    return model


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "cat", "bird", "dog"]), ["cat", "dog", "cat", "bird", "dog"],
                                    np.array(["cat", "dog", "cat", "bird", "dog"], dtype=object)])
def test_string_labels_name_the_dtype_once_and_suggest_encoding_or_the_wrapper(classifier, labels):
    classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError) as error:
        classifier.fit(np.zeros((5, 4)), labels, verbose=0)
    message = str(error.value)
    assert message.startswith("y: expected an array of real numbers, received ")
    assert len(re.findall(r"dtype", message.split(";")[0])) == 1, message
    assert "np.unique(y, return_inverse=True)" in message and "fd.wrappers.SKLearnClassifier" in message


@pytest.mark.parametrize("shape", [(5,), (5, 1)])
def test_integer_labels_with_categorical_crossentropy_echo_the_shape_given_and_suggest_the_sparse_loss(classifier, shape):
    classifier.compile(optimizer="adam", loss="categorical_crossentropy")
    labels = np.array([0, 1, 2, 0, 1]).reshape(shape)
    expected = (
        f"y: expected targets of shape (5, 3) for categorical_crossentropy, received an array of shape {shape}; "
        "y holds integer class labels: use loss='sparse_categorical_crossentropy', or one-hot encode them with "
        "fd.utils.to_categorical(y, 3)"
    )
    with pytest.raises(ValueError) as error:
        classifier.fit(np.zeros((5, 4)), labels, verbose=0)
    assert str(error.value) == expected
    # and the suggested fix works
    classifier.fit(np.zeros((5, 4)), fd.utils.to_categorical(labels, 3), verbose=0)


def test_no_label_hint_for_values_that_are_not_labels(classifier):
    classifier.compile(optimizer="adam", loss="categorical_crossentropy")
    with pytest.raises(ValueError) as error:
        classifier.fit(np.zeros((5, 4)), np.full(5, 0.5), verbose=0)
    assert "integer class labels" not in str(error.value)
