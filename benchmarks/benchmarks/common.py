"""Builders shared by the benchmarks: models, data and the JIT warm-up that ``setup`` does.

Everything here runs outside the timed code. Data are random: the work, not the accuracy, is measured.
"""

import os
import subprocess
import sys

import numpy as np

import fastdnn as fd

#: Models by label: (layer sizes, number of training samples). "mnist" is the MNIST-sized MLP of the
#: performance targets; "digits" is scikit-learn's digits; "wide" makes the optimizer pass dominate.
MODELS = {
    "digits 64-64-10": ((64, 64, 10), 1347),
    "mnist 784-512-256-10": ((784, 512, 256, 10), 60000),
    "wide 784-2048-2048-10": ((784, 2048, 2048, 10), 8192),
}

#: Parameter counts for the optimizer benchmarks; 10M is the size of the performance target.
PARAMETER_COUNTS = {"1M": 1_000_000, "10M": 10_000_000}


def mlp(sizes, optimizer="adam", seed=0):
    """A compiled ReLU MLP with a softmax output, sparse crossentropy and ``optimizer``."""
    fd.set_seed(seed)
    layers = [fd.layers.Dense(sizes[1], activation="relu", input_shape=(sizes[0],))]
    layers += [fd.layers.Dense(units, activation="relu") for units in sizes[2:-1]]
    layers.append(fd.layers.Dense(sizes[-1], activation="softmax"))
    model = fd.Sequential(layers)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def functional_mlp(sizes, optimizer="adam", seed=0):
    """`mlp` built with the functional API (``fd.Input`` and layer calls into ``fd.Model``): the same
    layers, weights and compile settings, run by the graph engine's general plan."""
    fd.set_seed(seed)
    tensor = inputs = fd.Input((sizes[0],))
    for units in sizes[1:-1]:
        tensor = fd.layers.Dense(units, activation="relu")(tensor)
    model = fd.Model(inputs, fd.layers.Dense(sizes[-1], activation="softmax")(tensor))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def classification_data(n, n_in, n_classes, seed=0):
    """``n`` float32 samples of ``n_in`` features in [0, 1) and integer labels below ``n_classes``."""
    rng = np.random.default_rng(seed)
    return rng.random((n, n_in), dtype=np.float32), rng.integers(0, n_classes, n)


def model_and_data(label, n=None):
    """``(model, x, y)`` for one of `MODELS` (``n`` overrides its sample count)."""
    sizes, default_n = MODELS[label]
    x, y = classification_data(n or default_n, sizes[0], sizes[-1])
    return mlp(sizes), x, y


#: Models whose layers run their batch as parts in fastdnn's pool (`fastdnn.threads.split_batch`):
#: label -> (input shape, number of training samples). Both as in ``benchmarks/peers.py``.
SEQUENCE_AND_IMAGE_MODELS = {"lenet-5 28x28x1": ((28, 28, 1), 1024), "lstm(128) 50x32": ((50, 32), 256)}


def sequence_or_image_model(label, seed=0):
    """``(model, x, y)``: LeNet-5 (ReLU convolutions, max pooling, 120-84-10) or LSTM(128) + softmax,
    Adam and sparse crossentropy, on random data."""
    shape, n = SEQUENCE_AND_IMAGE_MODELS[label]
    fd.set_seed(seed)
    layers = fd.layers
    if label.startswith("lenet"):
        body = [layers.Conv2D(6, 5, activation="relu", padding="same", input_shape=shape), layers.MaxPooling2D(2),
                layers.Conv2D(16, 5, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
                layers.Dense(120, activation="relu"), layers.Dense(84, activation="relu")]
    else:
        body = [layers.LSTM(128, input_shape=shape)]
    model = fd.Sequential([*body, layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    return model, rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, 10, n)


def warm_fit(model, x, y, batch_size):
    """Compile (or load from the cache) every kernel ``fit`` uses and size the batch buffers.

    Runs one full and one partial batch, so that the timed epoch allocates nothing new.
    """
    n = min(len(x), batch_size + max(1, batch_size // 2))
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0)


# A busy process spins (``while True: pass`` in blocks) for as long as the process that started it
# lives: killed by `BusyProcesses.stop`, and gone by itself if its parent is killed first (an asv
# timeout, Ctrl-C in peers.py), so that none is ever left spinning.
# The parent's pid comes as an argument: read in the child, it could already be init's.
_SPIN = "import os, sys\nwhile os.getppid() == int(sys.argv[1]):\n    for _ in range(100000):\n        pass\n"


class BusyProcesses:
    """``count`` processes that keep a core each busy, as other work on a user's machine does.

    ``with BusyProcesses(n):`` or `start` / `stop` (asv's ``setup`` / ``teardown``).
    """

    def __init__(self, count):
        self.count = count
        self.processes = []

    def start(self):
        try:
            for _ in range(self.count):
                self.processes.append(subprocess.Popen([sys.executable, "-c", _SPIN, str(os.getpid())]))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait()
        self.processes = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
