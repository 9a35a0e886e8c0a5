"""A small residual CNN on scikit-learn's handwritten digits, written with the functional API.

    conv(16) -> [conv(16) -> conv(16)] + skip -> relu -> max pool -> flatten -> softmax(10)

The skip connection is an ``Add`` of a block's input and output: the gradient reaching the sum goes
to both, and the block's input receives the sum of the two paths' gradients.

    python examples/residual_cnn_digits.py [EPOCHS]
"""

import sys

import numpy as np


def residual_cnn():
    """The model (uncompiled)."""
    import fastdnn as fd

    L = fd.layers
    images = fd.Input((8, 8, 1), name="images")
    h = L.Conv2D(16, 3, padding="same", activation="relu", name="stem")(images)
    r = L.Conv2D(16, 3, padding="same", activation="relu", name="block_conv1")(h)
    r = L.Conv2D(16, 3, padding="same", name="block_conv2")(r)
    h = L.Activation("relu", name="block_out")(L.Add(name="skip")([h, r]))
    h = L.Flatten(name="flatten")(L.MaxPooling2D(2, name="pool")(h))
    return fd.Model(images, L.Dense(10, activation="softmax", name="classes")(h), name="residual_cnn")


def main(epochs=10, verbose=2):
    """Train on 80% of the digits; returns the test accuracy."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import fastdnn as fd

    fd.set_seed(0)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2, random_state=0)
    model = residual_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if verbose:
        model.summary()
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_split=0.1, verbose=verbose)
    _, accuracy = model.evaluate(x_test, y_test)
    return accuracy


if __name__ == "__main__":
    print(f"test accuracy: {main(int(sys.argv[1]) if len(sys.argv) > 1 else 10):.3f}")
