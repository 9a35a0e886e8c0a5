"""Run under mpirun by tests/test_distributed.py: data-parallel training, then each rank saves its weights.

usage: train_on_ranks.py OUT_DIR SCENARIO   (scenario: train | disagree | crash)
"""

import sys

import numpy as np

import fastdnn as fd
from fastdnn import distributed

out, scenario = sys.argv[1], sys.argv[2]
parallel = distributed.world()
data = np.load(f"{out}/data.npz")
x, y = data["x"], data["y"]
if scenario == "disagree" and parallel.rank == 1:
    x, y = x[:-10], y[:-10]  # this rank was handed other data

fd.set_seed(5)
model = fd.Sequential([fd.layers.Dense(16, activation="tanh", input_shape=(x.shape[1],)), fd.layers.Dense(3, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model = distributed.data_parallel(model)


class CrashOnRankOne(fd.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if parallel.rank == 1 and epoch == 1:
            raise RuntimeError("simulated failure on rank 1")


callbacks = [CrashOnRankOne()] if scenario == "crash" else []
callbacks.append(fd.callbacks.CSVLogger(f"{out}/log-rank{parallel.rank}.csv"))
weights = data["sample_weight"] if "sample_weight" in data.files else None  # the "train" scenario, weighted
history = model.fit(
    x, y, batch_size=int(data["batch_size"]), epochs=3, validation_split=0.2, verbose=2, callbacks=callbacks, sample_weight=weights
)
np.savez(f"{out}/weights-rank{parallel.rank}.npz", *model.get_weights())
with open(f"{out}/history-rank{parallel.rank}.txt", "w") as handle:
    handle.write(repr(history.history))
