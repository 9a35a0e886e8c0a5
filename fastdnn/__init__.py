"""fastdnn: deep neural networks on NumPy arrays, trained by Numba kernels, behind a Keras-style API.

    import fastdnn as fd
    model = fd.Sequential([fd.layers.Dense(64, activation="relu", input_shape=(64,)),
                           fd.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=50, validation_split=0.1)
"""

from fastdnn import activations, callbacks, config, distributed, initializers, layers, losses, metrics, optimizers, plot
from fastdnn import utils, wrappers
from fastdnn.model import Sequential, TrainingDivergedError
from fastdnn.saving import FileFormatError, load_model
from fastdnn.random import set_seed
from fastdnn.threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "FileFormatError",
    "Sequential",
    "TrainingDivergedError",
    "load_model",
    "activations",
    "callbacks",
    "config",
    "distributed",
    "get_num_threads",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "optimizers",
    "plot",
    "set_num_threads",
    "set_seed",
    "utils",
    "wrappers",
]
