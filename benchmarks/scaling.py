"""Data-parallel scaling: step time split into compute and communication, and where it goes on a cluster.

    python benchmarks/scaling.py                 # launches mpirun with 1 and 2 ranks (cores permitting)
    python benchmarks/scaling.py --ranks 1 2 4 --batch-size 512

For each rank count it runs the MNIST-sized MLP (784-512-256-10, Adam) under ``mpirun`` and times, per
step, the compute (forward + backward of this rank's shard), the one Allreduce of the flat gradient
buffer, and the optimizer step; medians over the measured steps. Then it models a ring Allreduce on
a real network, ``T_comm(p) = 2 (p - 1) alpha + 2 (p - 1) / p * S / beta`` for a buffer of ``S`` bytes,
with the latency ``alpha`` and bandwidth ``beta`` stated in the output, and extrapolates the step
time ``T(p) = T_compute(B / p) + T_comm(p) + T_update`` to many machines.

Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for benchmark runs on machines that set them.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZES = (784, 512, 256, 10)
#: Networks for the extrapolation: (name, latency alpha in s, bandwidth beta in bytes/s).
NETWORKS = [("10 GbE", 20e-6, 1.25e9), ("100 Gb InfiniBand", 2e-6, 12.5e9)]


def worker(batch_size, steps, out):
    """Runs inside mpirun: time compute, Allreduce and update per step on this rank's shard."""
    import fastdnn as fd
    from fastdnn import distributed

    parallel = distributed.world()
    fd.set_num_threads(max(1, int(os.environ.get("SCALING_THREADS", "1"))))
    rng = np.random.default_rng(0)
    x = rng.random((batch_size * 8, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], len(x))
    fd.set_seed(0)
    layers = [fd.layers.Dense(SIZES[1], activation="relu", input_shape=(SIZES[0],))]
    layers += [fd.layers.Dense(units, activation="relu") for units in SIZES[2:-1]]
    layers.append(fd.layers.Dense(SIZES[-1], activation="softmax"))
    model = distributed.data_parallel(fd.Sequential(layers))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)  # compile, broadcast
    store = model._store
    timings = {"compute": [], "allreduce": [], "update": []}
    for step in range(steps):
        start = (step % 8) * batch_size
        lo, hi = parallel.shard(start, start + batch_size)
        xb, tb = x[lo:hi], y[lo:hi]
        if hasattr(parallel, "comm"):
            parallel.comm.Barrier()  # start together, so that waiting is not counted as communication
        t0 = time.perf_counter()
        loss, _ = model._loss_and_gradients(xb, tb, parallel.share(hi - lo, batch_size))
        t1 = time.perf_counter()
        parallel.reduce_step(store, loss, hi - lo, batch_size)
        t2 = time.perf_counter()
        model.optimizer.step(store.params, store.grads, store.offsets)
        t3 = time.perf_counter()
        timings["compute"].append(t1 - t0)
        timings["allreduce"].append(t2 - t1)
        timings["update"].append(t3 - t2)
    if parallel.is_root:
        medians = {key: float(np.median(values[2:])) for key, values in timings.items()}
        medians["bytes"] = int(store.reduction.nbytes)
        medians["ranks"] = parallel.size
        with open(out, "w") as handle:
            json.dump(medians, handle)


def ring_allreduce_seconds(size_bytes, ranks, alpha, beta):
    """Ring Allreduce: 2 (p - 1) messages of S / p bytes each way round the ring."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) * alpha + 2 * (ranks - 1) / ranks * size_bytes / beta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="*", default=None)
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.batch_size, args.steps, args.out)
        return
    if shutil.which("mpirun") is None:
        raise SystemExit("scaling.py needs mpirun (Open MPI or MPICH) and mpi4py (pip install 'fastdnn[mpi]')")
    cores = os.cpu_count() or 1
    ranks_list = args.ranks or [r for r in (1, 2, 4, 8) if r <= cores]
    environment = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", SCALING_THREADS="1")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for ranks in ranks_list:
            out = os.path.join(folder, f"r{ranks}.json")
            command = ["mpirun", "--oversubscribe", "--bind-to", "none", "-n", str(ranks), sys.executable, os.path.abspath(__file__),
                       "--worker", "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--out", out]
            result = subprocess.run(command, capture_output=True, text=True, env=environment)
            if result.returncode != 0:
                raise SystemExit(f"mpirun -n {ranks} failed:\n{result.stderr[-2000:]}")
            with open(out) as handle:
                rows.append(json.load(handle))

    print(f"MLP {'-'.join(map(str, SIZES))}, Adam, global batch {args.batch_size}, 1 BLAS thread per rank, {cores} cores")
    print(f"flat gradient buffer + loss slot: {rows[0]['bytes'] / 1e6:.2f} MB reduced per step\n")
    print(f"{'ranks':>5}  {'compute ms':>10}  {'allreduce ms':>12}  {'update ms':>9}  {'step ms':>8}  {'speedup':>7}  {'comm share':>10}")
    base = None
    for row in rows:
        step = row["compute"] + row["allreduce"] + row["update"]
        base = base or step
        print(f"{row['ranks']:>5}  {row['compute'] * 1e3:10.2f}  {row['allreduce'] * 1e3:12.3f}  {row['update'] * 1e3:9.2f}  "
              f"{step * 1e3:8.2f}  {base / step:7.2f}  {row['allreduce'] / step:10.1%}")

    single = rows[0]
    size = single["bytes"]
    print("\nExtrapolation, one rank per machine, ring Allreduce, compute of B/p rows scaled from 1 rank:")
    for name, alpha, beta in NETWORKS:
        print(f"\n  {name}: latency {alpha * 1e6:.0f} us, bandwidth {beta / 1e9:.2f} GB/s")
        print(f"  {'p':>4}  {'comm ms':>8}  {'step ms':>8}  {'speedup':>7}  {'efficiency':>10}")
        for p in (1, 2, 4, 8, 16, 32, 64):
            comm = ring_allreduce_seconds(size, p, alpha, beta)
            step = single["compute"] / p + comm + single["update"]
            serial = single["compute"] + single["update"]
            print(f"  {p:>4}  {comm * 1e3:8.3f}  {step * 1e3:8.3f}  {serial / step:7.2f}  {serial / step / p:10.1%}")
    print("\nThe optimizer update runs on every rank over all parameters and does not shrink with p; the Allreduce "
          "bandwidth term tends to 2 S / beta, so large models on slow networks are communication-bound.")


if __name__ == "__main__":
    main()
