"""Run under ``mpirun -n 2`` in numba's CUDA simulator by tests/test_device_parallel.py: data-parallel
training with ``device="cuda"``. One launch checks, in order (each error is raised on every rank together,
so the ranks catch it and go on):

1. two ranks on the simulator's one GPU, sharing not allowed: the "no GPU of its own" error;
2. ranks that disagree on the device (rank 1 compiled for the CPU): the named disagreement error;
   and rank 1 without CUDA (made so): its compile(device="cuda") passes, fit names it on every rank;
   a malformed FASTDNN_CUDA_AWARE_MPI, refused before training; and a learning rate that makes the
   weights overflow: every rank raises the divergence error together;
3. with FASTDNN_SHARE_GPUS=1: a functional model with two weighted outputs trained with the gradients
   staged through host memory ("staged");
4. a model with BatchNormalization (synchronized: global-batch statistics) and Dropout (each row the
   mask of one process), the device buffer handed to MPI (FASTDNN_CUDA_AWARE_MPI=1: "direct");
5. the same model with BatchNormalization(synchronized=False), on the device and on the CPU
   ("unsynchronized-cuda", "unsynchronized-cpu"): per-shard statistics, moving ones averaged over ranks;
   the device run streams its batches from the host (as for a training set too large for the device).

The models and data: tests/mpi/device_models.py.

usage: NUMBA_ENABLE_CUDASIM=1 FASTDNN_CUDA_BLOCK=8 ... mpirun -n 2 python train_on_device_ranks.py OUT_DIR
(small blocks: the simulator runs each CUDA thread as a Python thread)
"""

import json
import os
import sys

import device_models
import numpy as np

import fastdnn as fd
from fastdnn import backend, distributed

out = sys.argv[1]
parallel = distributed.world()
x, y = device_models.data()
report = {}


def model_on(device, kind="graph"):
    return distributed.data_parallel(device_models.build(kind, device))


def fit(kind, name, device="cuda"):
    model = model_on(device, kind)
    log = fd.callbacks.CSVLogger(f"{out}/{name}-log-rank{parallel.rank}.csv")
    history = device_models.train(model, kind, callbacks=[log], verbose=2)
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


def fit_once(model):
    model.fit(x, y, batch_size=7, epochs=1, verbose=0)


os.environ.pop("FASTDNN_SHARE_GPUS", None)
expect_error("too_many_ranks", lambda: fit_once(model_on("cuda")))
expect_error("disagree", lambda: fit_once(model_on("cpu" if parallel.rank == 1 else "cuda")))
os.environ["FASTDNN_SHARE_GPUS"] = "1"
available = backend.cuda_unavailable_reason
if parallel.rank == 1:
    backend.cuda_unavailable_reason = lambda: "no CUDA driver on this test rank"
expect_error("no_cuda", lambda: fit_once(model_on("cuda")))
backend.cuda_unavailable_reason = available


def diverge():
    fd.set_seed(5)
    model = fd.Sequential([fd.layers.Dense(3, input_shape=(x.shape[1],))])
    model.compile(optimizer=fd.optimizers.SGD(1e30), loss="mse", device="cuda")
    distributed.data_parallel(model).fit(x, np.eye(3, dtype=np.float32)[y["classes"]], batch_size=7, epochs=1, verbose=0)


os.environ["FASTDNN_CUDA_AWARE_MPI"] = "maybe"
expect_error("malformed", lambda: fit_once(model_on("cuda")))
del os.environ["FASTDNN_CUDA_AWARE_MPI"]
expect_error("diverged", diverge)
os.environ["FASTDNN_CUDA_AWARE_MPI"] = "0"
fit("graph", "staged")
os.environ["FASTDNN_CUDA_AWARE_MPI"] = "1"
fit("norm", "direct")  # its last batch has 1 row: shards of 1 and 0 rows (an empty shard)
os.environ["FASTDNN_CUDA_AWARE_MPI"] = "0"
resident = backend.CudaEngine._resident_data
streamed = []


def never_resident(engine, *arrays):
    streamed.append(True)
    return None


backend.CudaEngine._resident_data = never_resident
fit("unsynchronized", "unsynchronized-cuda")
backend.CudaEngine._resident_data = resident
report["streamed epochs"] = len(streamed)
fit("unsynchronized", "unsynchronized-cpu", device="cpu")
with open(f"{out}/report-rank{parallel.rank}.json", "w") as handle:
    json.dump(report, handle)
