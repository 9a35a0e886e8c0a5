"""One small model of every layer family, trained the same way in one process (by
tests/test_distributed.py) and under mpirun (by tests/mpi/families_on_ranks.py).

Each family builds its model and data from fixed seeds; `train` fits it on the same global batches
(43 samples, 34 for training: batches of 8 and a last one of 2, so 3 ranks get shards of 3/3/2 and
then 1/1/0, an empty shard). Data parallel must give the weights and history of one process.
Layers before a batch normalization have no bias: its gradient is zero up to round-off, which Adam
would turn into steps of noise that no two summation orders share.
"""

import numpy as np

import fastdnn as fd

L = fd.layers
N, BATCH, EPOCHS = 43, 8, 2


def _classes(score):
    return np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))


def dense():
    x = np.random.default_rng(1).normal(size=(N, 6)).astype(np.float32)
    model = fd.Sequential([L.Dense(8, activation="tanh", input_shape=(6,)), L.Dense(3, activation="softmax")])
    return model, x, _classes(x[:, 0] - x[:, 1])


def conv():
    x = np.random.default_rng(2).normal(size=(N, 6, 6, 2)).astype(np.float32)
    model = fd.Sequential([
        L.Conv2D(4, 3, activation="relu", input_shape=(6, 6, 2)), L.MaxPooling2D(), L.Flatten(), L.Dense(3, activation="softmax"),
    ])
    return model, x, _classes(x[:, :3, :3, 0].sum(axis=(1, 2)))


def batch_norm():
    x = (np.random.default_rng(3).normal(size=(N, 6, 6, 2)) * 2 + 1).astype(np.float32)
    model = fd.Sequential([
        L.Conv2D(4, 3, use_bias=False, input_shape=(6, 6, 2)), L.BatchNormalization(momentum=0.8), L.Activation("relu"),
        L.GlobalAveragePooling2D(), L.Dense(6, use_bias=False), L.BatchNormalization(synchronized=True), L.Dense(3, activation="softmax"),
    ])
    return model, x, _classes(x[:, :, :, 1].mean(axis=(1, 2)))


def dropout():
    x = np.random.default_rng(4).normal(size=(N, 6)).astype(np.float32)
    model = fd.Sequential([
        L.Dense(12, activation="relu", input_shape=(6,)), L.Dropout(0.4), L.Dense(8, activation="relu"), L.Dropout(0.3, seed=9),
        L.Dense(3, activation="softmax"),
    ])
    return model, x, _classes(x[:, 2] + x[:, 3])


def recurrent():
    x = np.random.default_rng(5).integers(0, 10, size=(N, 5))
    model = fd.Sequential([
        L.Embedding(10, 4, input_shape=(5,)), L.LSTM(5, return_sequences=True), L.GRU(4), L.Dense(3, activation="softmax"),
    ])
    return model, x, x[:, 0] % 3


def graph():
    """A graph model with a merge layer, batch normalization and dropout on its branches."""
    x = np.random.default_rng(6).normal(size=(N, 6)).astype(np.float32)
    inputs = fd.Input((6,))
    left = L.Dense(8, activation="relu")(inputs)
    right = L.Dropout(0.25)(L.BatchNormalization()(L.Dense(8, use_bias=False)(inputs)))
    merged = L.Concatenate()([L.Add()([left, right]), inputs])
    model = fd.Model(inputs, L.Dense(3, activation="softmax")(merged))
    return model, x, _classes(x[:, 0] * x[:, 1])


FAMILIES = {"dense": dense, "conv": conv, "batch_norm": batch_norm, "dropout": dropout, "recurrent": recurrent, "graph": graph}


def build(name, parallel=False):
    """The family's compiled model (seeded weights), its inputs and labels."""
    fd.set_seed(11)
    model, x, y = FAMILIES[name]()
    model.compile(optimizer=fd.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if parallel:
        fd.distributed.data_parallel(model)
    return model, x, y


def train(name, parallel=False, epochs=EPOCHS, callbacks=None, synchronized=None):
    """Fit the family (its batch normalizations ``synchronized`` as given, unless None); its weights and history."""
    model, x, y = build(name, parallel)
    for layer in model.layers:
        if synchronized is not None and isinstance(layer, L.BatchNormalization):
            layer.synchronized = synchronized
    fd.set_seed(12)  # the shuffling (rank 0's) and the unseeded dropout keys
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, validation_split=0.2, verbose=0, callbacks=callbacks)
    return model, history.history


def resume(path, x, y, parallel=False, epochs=4):
    """Continue the run of a checkpoint (its epoch from the file name's ``-{epoch}``) to ``epochs``."""
    model = fd.load_model(path)
    if parallel:
        fd.distributed.data_parallel(model)
    initial = int(str(path).rsplit("-", 1)[1].split(".")[0])
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, initial_epoch=initial, validation_split=0.2, verbose=0)
    return model, history.history
