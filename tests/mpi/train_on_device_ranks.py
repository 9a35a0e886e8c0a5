"""Run under ``mpirun -n 2`` in numba's CUDA simulator by tests/test_device_parallel.py: data-parallel
training with ``device="cuda"``. One launch checks, in order (each error is raised on every rank together,
so the ranks catch it and go on):

1. two ranks on the simulator's one GPU, sharing not allowed: the "no GPU of its own" error;
2. ranks that disagree on the device (rank 1 compiled for the CPU): the named disagreement error;
   and rank 1 without CUDA (made so): its compile(device="cuda") passes, fit names it on every rank;
   a malformed FASTDNN_CUDA_AWARE_MPI, refused before training; and a learning rate that makes the
   weights overflow: every rank raises the divergence error together;
3. with FASTDNN_SHARE_GPUS=1: an MLP trained with the gradients staged through host memory ("staged");
4. a model with BatchNormalization (synchronized: global-batch statistics) and Dropout (each row the
   mask of one process), the device buffer handed to MPI (FASTDNN_CUDA_AWARE_MPI=1: "direct");
5. the same model with BatchNormalization(synchronized=False), on the device and on the CPU
   ("unsynchronized-cuda", "unsynchronized-cpu"): per-shard statistics, moving ones averaged over ranks;
   the device run streams its batches from the host (as for a training set too large for the device).

usage: NUMBA_ENABLE_CUDASIM=1 FASTDNN_CUDA_BLOCK=8 ... mpirun -n 2 python train_on_device_ranks.py OUT_DIR
(small blocks: the simulator runs each CUDA thread as a Python thread)
"""

import json
import os
import sys

import numpy as np

import fastdnn as fd
from fastdnn import backend, distributed

out = sys.argv[1]
parallel = distributed.world()
data = np.load(f"{out}/data.npz")
x, y, batch_size, epochs = data["x"], data["y"], int(data["batch_size"]), int(data["epochs"])
report = {}


def layers(kind):
    if kind == "mlp":
        return [fd.layers.Dense(5, activation="tanh", input_shape=(x.shape[1],)), fd.layers.Dense(3, activation="softmax")]
    return [
        fd.layers.Dense(6, activation="relu", input_shape=(x.shape[1],)),
        fd.layers.BatchNormalization(synchronized=None if kind == "norm" else False),
        fd.layers.Dropout(0.3),
        fd.layers.Dense(3, activation="softmax"),
    ]


def model_on(device, kind="mlp"):
    fd.set_seed(5)
    model = fd.Sequential(layers(kind))
    model.compile(optimizer=fd.optimizers.SGD(0.2, momentum=0.5), loss="sparse_categorical_crossentropy", metrics=["accuracy"], device=device)
    return distributed.data_parallel(model)


def fit(model, name, batch_size=batch_size):
    fd.set_seed(11)
    log = fd.callbacks.CSVLogger(f"{out}/{name}-log-rank{parallel.rank}.csv")
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, validation_split=0.25, verbose=2, callbacks=[log])
    np.savez(f"{out}/{name}-weights-rank{parallel.rank}.npz", *model.get_weights())
    transport = model._cuda.reduction_transport.kind if model._cuda is not None else None
    report[name] = {"history": history.history, "transport": transport}


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
available = backend.cuda_unavailable_reason
if parallel.rank == 1:
    backend.cuda_unavailable_reason = lambda: "no CUDA driver on this test rank"
expect_error("no_cuda", lambda: model_on("cuda").fit(x, y, batch_size=batch_size, epochs=1, verbose=0))
backend.cuda_unavailable_reason = available


def diverge():
    fd.set_seed(5)
    model = fd.Sequential([fd.layers.Dense(3, input_shape=(x.shape[1],))])
    model.compile(optimizer=fd.optimizers.SGD(1e30), loss="mse", device="cuda")
    distributed.data_parallel(model).fit(x, np.eye(3, dtype=np.float32)[y], batch_size=batch_size, epochs=1, verbose=0)


os.environ["FASTDNN_CUDA_AWARE_MPI"] = "maybe"
expect_error("malformed", lambda: model_on("cuda").fit(x, y, batch_size=batch_size, epochs=1, verbose=0))
del os.environ["FASTDNN_CUDA_AWARE_MPI"]
expect_error("diverged", diverge)
os.environ["FASTDNN_CUDA_AWARE_MPI"] = "0"
fit(model_on("cuda"), "staged")
# batches of 6, 6, 6 and 1 training rows: the last one's shards are 1 and 0 rows (an empty shard)
os.environ["FASTDNN_CUDA_AWARE_MPI"] = "1"
fit(model_on("cuda", "norm"), "direct", batch_size=6)
os.environ["FASTDNN_CUDA_AWARE_MPI"] = "0"
resident = backend.CudaEngine._resident_data
streamed = []


def never_resident(engine, *arrays):
    streamed.append(True)
    return None


backend.CudaEngine._resident_data = never_resident
fit(model_on("cuda", "unsynchronized"), "unsynchronized-cuda", batch_size=6)
backend.CudaEngine._resident_data = resident
report["streamed epochs"] = len(streamed)
fit(model_on("cpu", "unsynchronized"), "unsynchronized-cpu", batch_size=6)
with open(f"{out}/report-rank{parallel.rank}.json", "w") as handle:
    json.dump(report, handle)
