"""fastdnn: deep neural networks on NumPy arrays, trained by Numba kernels, behind a Keras-style API.

    import fastdnn as fd
    model = fd.Sequential([fd.Input((64,)), fd.layers.Dense(64, activation="relu"),
                           fd.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=50, validation_split=0.1)
"""

from fastdnn import activations, callbacks, config, distributed, initializers, layers, losses, metrics, optimizers, plot
from fastdnn import utils
from fastdnn.model import Input, Model, Sequential, TrainingDivergedError
from fastdnn.saving import FileFormatError, load_model
from fastdnn.random import set_seed
from fastdnn.threads import get_num_threads, set_num_threads

__version__ = "0.1.0"


def __getattr__(name):
    # fd.wrappers imports scikit-learn (0.8 s): only on first use, not with `import fastdnn`
    if name == "wrappers":
        import importlib

        return importlib.import_module("fastdnn.wrappers")
    raise AttributeError(f"module 'fastdnn' has no attribute {name!r}")


__all__ = [
    "FileFormatError",
    "Input",
    "Model",
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
