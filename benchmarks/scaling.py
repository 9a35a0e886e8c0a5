"""Data-parallel scaling: step time split into compute and communication, and where it goes on a cluster.

    python benchmarks/scaling.py                 # launches mpirun with 1 and 2 ranks (cores permitting)
    python benchmarks/scaling.py --ranks 1 2 4 --batch-size 512
    python benchmarks/scaling.py --model bn      # the MLP with synchronized BatchNormalization and Dropout

For each rank count it runs the MNIST-sized MLP (784-512-256-10, Adam) under ``mpirun`` and times, per
step, the compute (forward + backward of this rank's shard), the one Allreduce of the flat gradient
buffer, and the optimizer step; medians over the measured steps. ``--model bn`` puts a
BatchNormalization after each hidden Dense (synchronized: the default under data_parallel) and a
Dropout after the first; their own small Allreduces (per-feature sums, 2 per layer and step) are timed
apart from the compute ("layer sync"). Then it models the Allreduces on a real network: a ring for
the gradient buffer of ``S`` bytes, ``T_ring(p) = 2 (p - 1) alpha + 2 (p - 1) / p * S / beta``, and
recursive doubling for the layers' small buffers of ``s`` bytes, ``T_small(p) = ceil(log2 p) (alpha +
s / beta)`` (what MPI libraries pick for short messages), with the latency ``alpha`` and bandwidth
``beta`` stated in the output, and extrapolates the step time ``T(p) = T_compute(B / p) + T_ring(p) +
k T_small(p) + T_update`` (``k`` layer Allreduces per step) to many machines.

Unset OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for benchmark runs on machines that set them.
"""

import argparse
import json
import math
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


def _layers(fd, model_kind):
    """The MLP's layers; ``bn``: BatchNormalization (synchronized) after each hidden Dense, Dropout after the first."""
    layers = []
    for index, units in enumerate(SIZES[1:-1]):
        if model_kind == "bn":
            extra = {"input_shape": (SIZES[0],)} if index == 0 else {}
            layers += [fd.layers.Dense(units, use_bias=False, **extra), fd.layers.BatchNormalization(), fd.layers.Activation("relu")]
            if index == 0:
                layers.append(fd.layers.Dropout(0.2))
        else:
            extra = {"input_shape": (SIZES[0],)} if index == 0 else {}
            layers.append(fd.layers.Dense(units, activation="relu", **extra))
    layers.append(fd.layers.Dense(SIZES[-1], activation="softmax"))
    return layers


def worker(batch_size, steps, out, model_kind="mlp"):
    """Runs inside mpirun: time compute, the layers' Allreduces, the gradient Allreduce and update per step."""
    import fastdnn as fd
    from fastdnn import distributed

    fd.set_num_threads(max(1, int(os.environ.get("SCALING_THREADS", "1"))))
    rng = np.random.default_rng(0)
    x = rng.random((batch_size * 8, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], len(x))
    fd.set_seed(0)
    model = distributed.data_parallel(fd.Sequential(_layers(fd, model_kind)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)  # compile, broadcast
    parallel = model._parallel
    store = model._store
    # the layers' own collectives (synchronized batch normalization), timed apart from the compute
    layer_sync = {"seconds": 0.0, "calls": 0, "bytes": 0}
    reduce = parallel.allreduce_sum

    def timed_allreduce(values):
        t = time.perf_counter()
        reduce(values)
        layer_sync["seconds"] += time.perf_counter() - t
        layer_sync["calls"] += 1
        layer_sync["bytes"] += values.nbytes
        return values

    parallel.allreduce_sum = timed_allreduce
    shard = distributed.Shard(parallel)
    model._give_layers_the_shard(shard)  # what fit does for its steps
    timings = {"compute": [], "layer_sync": [], "allreduce": [], "update": []}
    for step in range(steps):
        start = (step % 8) * batch_size
        lo, hi = parallel.shard(start, start + batch_size)
        shard.first_row = lo - start
        xb, tb = x[lo:hi], y[lo:hi]
        if hasattr(parallel, "comm"):
            parallel.comm.Barrier()  # start together, so that waiting is not counted as communication
        synced = layer_sync["seconds"]
        t0 = time.perf_counter()
        loss, _ = model._loss_and_gradients(xb, tb, parallel.share(hi - lo, batch_size))
        t1 = time.perf_counter()
        parallel.reduce_step(store, loss, hi - lo, batch_size)
        t2 = time.perf_counter()
        model.optimizer.step(store.params, store.grads, store.offsets)
        t3 = time.perf_counter()
        sync = layer_sync["seconds"] - synced
        timings["compute"].append(t1 - t0 - sync)
        timings["layer_sync"].append(sync)
        timings["allreduce"].append(t2 - t1)
        timings["update"].append(t3 - t2)
    if parallel.is_root:
        medians = {key: float(np.median(values[2:])) for key, values in timings.items()}
        medians["bytes"] = int(store.reduction.nbytes)
        medians["ranks"] = parallel.size
        medians["layer_allreduces"] = layer_sync["calls"] / steps
        medians["layer_bytes"] = layer_sync["bytes"] / max(layer_sync["calls"], 1)
        with open(out, "w") as handle:
            json.dump(medians, handle)


def ring_allreduce_seconds(size_bytes, ranks, alpha, beta):
    """Ring Allreduce: 2 (p - 1) messages of S / p bytes each way round the ring."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) * alpha + 2 * (ranks - 1) / ranks * size_bytes / beta


def small_allreduce_seconds(size_bytes, ranks, alpha, beta):
    """Recursive doubling: ceil(log2 p) exchanges of the whole (small) buffer."""
    if ranks == 1:
        return 0.0
    return math.ceil(math.log2(ranks)) * (alpha + size_bytes / beta)


def _layer_allreduces(model_kind):
    """The layers' Allreduces per step and their mean size in bytes, for the extrapolation (as the
    worker counts them with 2 ranks): two per synchronized BatchNormalization, of 2 C + 1 and 2 C float64."""
    if model_kind != "bn":
        return 0, 0.0
    features = SIZES[1:-1]
    sizes = [8 * (2 * c + 1) for c in features] + [8 * 2 * c for c in features]
    return len(sizes), sum(sizes) / len(sizes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="*", default=None)
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--model", choices=("mlp", "bn"), default="mlp", help="bn: with synchronized BatchNormalization and Dropout")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.batch_size, args.steps, args.out, args.model)
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
                       "--worker", "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--out", out,
                       "--model", args.model]
            result = subprocess.run(command, capture_output=True, text=True, env=environment)
            if result.returncode != 0:
                raise SystemExit(f"mpirun -n {ranks} failed:\n{result.stderr[-2000:]}")
            with open(out) as handle:
                rows.append(json.load(handle))

    described = "MLP" if args.model == "mlp" else "MLP with synchronized BatchNormalization and Dropout"
    print(f"{described} {'-'.join(map(str, SIZES))}, Adam, global batch {args.batch_size}, 1 BLAS thread per rank, {cores} cores")
    print(f"flat gradient buffer + loss slot: {rows[0]['bytes'] / 1e6:.2f} MB reduced per step")
    calls, small = _layer_allreduces(args.model)
    if calls:
        print(f"layer Allreduces: {calls} per step of {small:.0f} bytes on average")
    print(f"\n{'ranks':>5}  {'compute ms':>10}  {'layer sync ms':>13}  {'allreduce ms':>12}  {'update ms':>9}  {'step ms':>8}  "
          f"{'speedup':>7}  {'comm share':>10}")
    base = None
    for row in rows:
        step = row["compute"] + row["layer_sync"] + row["allreduce"] + row["update"]
        base = base or step
        comm = row["layer_sync"] + row["allreduce"]
        print(f"{row['ranks']:>5}  {row['compute'] * 1e3:10.2f}  {row['layer_sync'] * 1e3:13.3f}  {row['allreduce'] * 1e3:12.3f}  "
              f"{row['update'] * 1e3:9.2f}  {step * 1e3:8.2f}  {base / step:7.2f}  {comm / step:10.1%}")

    single = rows[0]
    size = single["bytes"]
    print("\nExtrapolation, one rank per machine, ring Allreduce of the gradients, recursive doubling for the layers'"
          " small Allreduces, compute of B/p rows scaled from 1 rank:")
    for name, alpha, beta in NETWORKS:
        print(f"\n  {name}: latency {alpha * 1e6:.0f} us, bandwidth {beta / 1e9:.2f} GB/s")
        print(f"  {'p':>4}  {'comm ms':>8}  {'layers ms':>9}  {'step ms':>8}  {'speedup':>7}  {'efficiency':>10}")
        for p in (1, 2, 4, 8, 16, 32, 64):
            comm = ring_allreduce_seconds(size, p, alpha, beta)
            layers = calls * small_allreduce_seconds(small, p, alpha, beta)
            step = single["compute"] / p + comm + layers + single["update"]
            serial = single["compute"] + single["update"]
            print(f"  {p:>4}  {comm * 1e3:8.3f}  {layers * 1e3:9.3f}  {step * 1e3:8.3f}  {serial / step:7.2f}  {serial / step / p:10.1%}")
    print("\nThe optimizer update runs on every rank over all parameters and does not shrink with p; the Allreduce "
          "bandwidth term tends to 2 S / beta, so large models on slow networks are communication-bound. The layers' "
          "Allreduces are small and latency-bound: each costs ceil(log2 p) network latencies, and they sit between "
          "the layers' forward and backward passes, where nothing overlaps them.")


if __name__ == "__main__":
    main()
