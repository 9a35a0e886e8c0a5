"""The models and data of tests/mpi/train_on_device_ranks.py (under mpirun) and of their one-process
references in tests/test_device_parallel.py: built the same way in both places.

26 samples, 19 for training (a quarter held out for validation): batches of 7 give shards of 4 + 3,
4 + 3 and 3 + 2 rows on two ranks; batches of 6 end with a batch of 1 row, whose shards are 1 and 0.
"""

import numpy as np

import fastdnn as fd

L = fd.layers
N, EPOCHS = 26, 2
BATCH = {"graph": 7, "norm": 6, "unsynchronized": 6}


def data():
    """``(x, y)``: 4 features; y maps the outputs' names to targets (classes, and a value to regress)."""
    x = np.random.default_rng(0).normal(size=(N, 4)).astype(np.float32)
    classes = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    return x, {"classes": classes, "value": (0.5 * x[:, :1] - x[:, 3:]).astype(np.float32)}


def build(kind, device):
    """A compiled model: ``graph`` a functional model with two weighted outputs; ``norm`` (synchronized
    BatchNormalization, Dropout) and ``unsynchronized`` (``synchronized=False``) sequential ones."""
    fd.set_seed(5)
    optimizer = fd.optimizers.SGD(0.2, momentum=0.5)
    if kind == "graph":
        inputs = fd.Input((4,), name="x")
        hidden = L.Dense(5, activation="tanh", name="hidden")(inputs)
        outputs = {"classes": L.Dense(3, activation="softmax", name="classes")(hidden), "value": L.Dense(1, name="value")(hidden)}
        model = fd.Model(inputs, outputs)
        model.compile(
            optimizer=optimizer, loss={"classes": "sparse_categorical_crossentropy", "value": "mse"},
            loss_weights={"classes": 1.0, "value": 0.5}, metrics={"classes": ["accuracy"]}, device=device,
        )
        return model
    model = fd.Sequential([
        L.Dense(6, activation="relu", input_shape=(4,)),
        L.BatchNormalization(synchronized=None if kind == "norm" else False),
        L.Dropout(0.3),
        L.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"], device=device)
    return model


def targets(kind, y):
    return y if kind == "graph" else y["classes"]


def train(model, kind, callbacks=(), verbose=0):
    """Fit on the shared data with the shared seed; returns the History."""
    x, y = data()
    fd.set_seed(11)
    return model.fit(x, targets(kind, y), batch_size=BATCH[kind], epochs=EPOCHS, validation_split=0.25, verbose=verbose, callbacks=list(callbacks))
