"""Run under mpirun by tests/test_distributed.py: data-parallel training, then each rank saves its weights.

usage: train_on_ranks.py SCENARIO OUT_DIR [OUT_DIR ...]

- ``train``: for each OUT_DIR in turn (one launch, several runs: each launch costs seconds), train on
  its ``data.npz`` and save each rank's weights, history and (rank 0's) CSV log there;
- ``disagree``: rank 1 is handed other data; each rank writes the error ``fit`` raised on it, then the
  job ends normally (so the test sees that every rank raised, and that none waited for the others);
- ``crash``: rank 1 raises in a callback, which must end the whole job.
"""

import sys

import numpy as np

import fastdnn as fd
from fastdnn import distributed

scenario, folders = sys.argv[1], sys.argv[2:]
parallel = distributed.world()


class CrashOnRankOne(fd.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if parallel.rank == 1 and epoch == 1:
            raise RuntimeError("simulated failure on rank 1")


def train(out):
    data = np.load(f"{out}/data.npz")
    x, y = data["x"], data["y"]
    if scenario == "disagree" and parallel.rank == 1:
        x, y = x[:-10], y[:-10]  # this rank was handed other data
    fd.set_seed(5)
    model = fd.Sequential([fd.layers.Dense(16, activation="tanh", input_shape=(x.shape[1],)), fd.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model = distributed.data_parallel(model)
    callbacks = [CrashOnRankOne()] if scenario == "crash" else []
    callbacks.append(fd.callbacks.CSVLogger(f"{out}/log-rank{parallel.rank}.csv"))
    weights = data["sample_weight"] if "sample_weight" in data.files else None
    print(f"----- {out}", flush=True)
    history = model.fit(
        x, y, batch_size=int(data["batch_size"]), epochs=3, validation_split=0.2, verbose=2, callbacks=callbacks, sample_weight=weights
    )
    np.savez(f"{out}/weights-rank{parallel.rank}.npz", *model.get_weights())
    with open(f"{out}/history-rank{parallel.rank}.txt", "w") as handle:
        handle.write(repr(history.history))


for folder in folders:
    if scenario == "disagree":
        try:
            train(folder)
        except ValueError as error:
            with open(f"{folder}/error-rank{parallel.rank}.txt", "w") as handle:
                handle.write(str(error))
    else:
        train(folder)
