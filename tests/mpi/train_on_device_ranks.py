"""Run under ``mpirun -n 2`` in numba's CUDA simulator by tests/test_device_parallel.py: data-parallel
training with ``device="cuda"``. One launch checks, in order (each error is raised on every rank together,
so the ranks catch it and go on):

1. two ranks on the simulator's one GPU, sharing not allowed: the "no GPU of its own" error;
2. ranks that disagree on the device (rank 1 compiled for the CPU): the named disagreement error;
3. with FASTDNN_SHARE_GPUS=1: training with the gradients staged through host memory, then
4. the same with the device buffer handed to MPI (FASTDNN_CUDA_AWARE_MPI=1, the CUDA-aware path).

usage: train_on_device_ranks.py OUT_DIR
"""

import json
import os
import sys

import numpy as np

import fastdnn as fd
from fastdnn import config, distributed

config.CUDA_BLOCK = 8  # the simulator runs each CUDA thread as a Python thread
out = sys.argv[1]
parallel = distributed.world()
data = np.load(f"{out}/data.npz")
x, y, batch_size, epochs = data["x"], data["y"], int(data["batch_size"]), int(data["epochs"])
report = {}


def model_on(device):
    fd.set_seed(5)
    model = fd.Sequential([fd.layers.Dense(5, activation="tanh", input_shape=(x.shape[1],)), fd.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=fd.optimizers.SGD(0.2, momentum=0.5), loss="sparse_categorical_crossentropy", metrics=["accuracy"], device=device)
    return distributed.data_parallel(model)


def fit(model, name):
    fd.set_seed(11)
    log = fd.callbacks.CSVLogger(f"{out}/{name}-log-rank{parallel.rank}.csv")
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_split=0.25, verbose=2, callbacks=[log])
    np.savez(f"{out}/{name}-weights-rank{parallel.rank}.npz", *model.get_weights())
    report[name] = {"history": history.history, "transport": model._cuda.reduction_transport.kind}


def expect_error(name, run):
    try:
        run()
    except ValueError as error:
        report[name] = str(error)
    else:
        report[name] = None


os.environ.pop("FASTDNN_SHARE_GPUS", None)
expect_error("too_many_ranks", lambda: model_on("cuda").fit(x, y, batch_size=batch_size, epochs=1, verbose=0))
expect_error("disagree", lambda: model_on("cpu" if parallel.rank == 1 else "cuda").fit(x, y, batch_size=batch_size, epochs=1, verbose=0))
os.environ["FASTDNN_SHARE_GPUS"] = "1"
os.environ["FASTDNN_CUDA_AWARE_MPI"] = "0"
fit(model_on("cuda"), "staged")
os.environ["FASTDNN_CUDA_AWARE_MPI"] = "1"
fit(model_on("cuda"), "direct")
with open(f"{out}/report-rank{parallel.rank}.json", "w") as handle:
    json.dump(report, handle)
