"""Draw the figures the documentation shows, with fastdnn itself (run by ``conf.py`` at build time).

- ``activations.png``: every registered activation and its derivative (``fd.plot.activations``).
- ``history.png``: loss and accuracy curves, training and validation, of a short seeded run on
  scikit-learn's digits (``fd.plot.history``).

Usage: ``python docs/make_figures.py [OUTPUT_FOLDER]`` (default ``docs/_generated``).
"""

import os
import sys

import numpy as np


def train_digits(epochs=8):
    """A seeded 64-64-10 MLP on scikit-learn's digits; returns ``(model, history, test accuracy)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import fastdnn as fd

    fd.set_seed(0)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2, random_state=0)
    model = fd.Sequential([
        fd.layers.Dense(64, activation="relu", input_shape=(64,)),
        fd.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_split=0.1, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test)
    return model, history, accuracy


def main(folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import fastdnn as fd

    os.makedirs(folder, exist_ok=True)
    figure = fd.plot.activations(path=os.path.join(folder, "activations.png"))
    plt.close(figure)
    _, history, _ = train_digits()
    figure = fd.plot.history(history, path=os.path.join(folder, "history.png"))
    plt.close(figure)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "_generated"))
