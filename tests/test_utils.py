import numpy as np
import pytest

import fastdnn as fd


def test_to_categorical_matches_a_one_hot_built_by_comparison():
    labels = np.array([0, 2, 1, 2])
    expected = (labels[:, None] == np.arange(3)).astype(np.float32)
    result = fd.utils.to_categorical(labels)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, expected)


def test_to_categorical_num_classes_dtype_and_shapes():
    assert fd.utils.to_categorical([1], num_classes=4).tolist() == [[0, 1, 0, 0]]
    assert fd.utils.to_categorical(np.array([[1], [0]]), 3).shape == (2, 3)  # trailing 1 dropped, as Keras
    assert fd.utils.to_categorical(np.zeros((2, 5), dtype=np.int32), 4).shape == (2, 5, 4)
    assert fd.utils.to_categorical([3.0, 1.0], dtype="int8").dtype == np.int8
    assert fd.utils.to_categorical(2).tolist() == [0, 0, 1]


@pytest.mark.parametrize(
    "labels, num_classes, error, message",
    [
        ([0, 3], 3, ValueError, r"x: expected class labels in \[0, 3\), received 3"),
        ([-1, 2], None, ValueError, r"x: expected class labels in \[0, 3\), received -1"),
        ([0.5], None, ValueError, "whole-number class labels"),
        (["a"], None, TypeError, "x: expected an array of real numbers"),
        ([], None, ValueError, "at least one class label"),
        ([True], None, TypeError, "boolean"),
        ([1], 0, ValueError, "num_classes: expected a positive integer"),
        ([1], 2.5, ValueError, "num_classes"),
    ],
)
def test_to_categorical_refuses_bad_input_by_name(labels, num_classes, error, message):
    with pytest.raises(error, match=message):
        fd.utils.to_categorical(labels, num_classes)
