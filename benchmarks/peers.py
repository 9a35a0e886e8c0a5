"""Side by side: the same training work in fastdnn and in the libraries users would otherwise pick.

Every workload is run by every available library in ONE process, interleaved round by round (so that
machine noise hits all of them alike); the table gives the median time of each and its ratio to
fastdnn's (above 1: slower than fastdnn). Peers that are not installed are reported and skipped.

    python benchmarks/peers.py                      # every workload, every peer found
    python benchmarks/peers.py --workload mlp --batch-size 128 --rounds 5

On machines that set ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE``, unset them for the run (they slow
current OpenBLAS): ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/peers.py``.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

# -- workloads --------------------------------------------------------------------------------------


class MLPEpoch:
    """One epoch of an MLP with ReLU hidden layers, softmax + crossentropy, Adam (lr 1e-3), shuffled.

    ``sizes`` is (inputs, hidden..., classes); the data are random, the work is what matters.
    """

    def __init__(self, name, sizes, n_samples, batch_size):
        self.name = name
        self.sizes = sizes
        self.batch_size = batch_size
        rng = np.random.default_rng(0)
        self.x = rng.random((n_samples, sizes[0]), dtype=np.float32)
        self.y = rng.integers(0, sizes[-1], n_samples)

    @property
    def label(self):
        shape = "-".join(map(str, self.sizes))
        return f"{self.name} {len(self.x)}x{shape} batch {self.batch_size} (1 epoch)"


# -- peers: each returns a callable that runs the workload once, after a warm-up run ----------------


def fastdnn_peer(work):
    import fastdnn as fd

    fd.set_seed(0)
    layers = [fd.layers.Dense(work.sizes[1], activation="relu", input_shape=(work.sizes[0],))]
    layers += [fd.layers.Dense(units, activation="relu") for units in work.sizes[2:-1]]
    layers.append(fd.layers.Dense(work.sizes[-1], activation="softmax"))
    model = fd.Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(work.x[: 4 * work.batch_size], work.y[: 4 * work.batch_size], batch_size=work.batch_size, verbose=0)
    return lambda: model.fit(work.x, work.y, batch_size=work.batch_size, epochs=1, verbose=0)


def numpy_peer(work):
    """The same maths as a plain NumPy loop: what a careful user writes without a framework."""
    rng = np.random.default_rng(0)
    weights = []
    for n_in, n_out in zip(work.sizes[:-1], work.sizes[1:]):
        limit = np.sqrt(6.0 / (n_in + n_out))
        weights += [rng.uniform(-limit, limit, (n_in, n_out)).astype(np.float32), np.zeros(n_out, np.float32)]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    state = {"t": 0}
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7

    def step(xb, yb):
        activations = [xb]
        for k in range(0, len(weights), 2):
            z = activations[-1] @ weights[k] + weights[k + 1]
            activations.append(np.maximum(z, 0.0) if k + 2 < len(weights) else z)
        logits = activations[-1]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = e / e.sum(axis=1, keepdims=True)
        d = probabilities
        d[np.arange(len(yb)), yb] -= 1.0
        d /= len(yb)
        grads = [None] * len(weights)
        for k in range(len(weights) - 2, -1, -2):
            grads[k] = activations[k // 2].T @ d
            grads[k + 1] = d.sum(axis=0)
            if k:
                d = (d @ weights[k].T) * (activations[k // 2] > 0)
        state["t"] += 1
        t = state["t"]
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        for w, g, mk, vk in zip(weights, grads, m, v):
            mk += (g - mk) * (1 - b1)
            vk += (g * g - vk) * (1 - b2)
            w -= alpha * mk / (np.sqrt(vk) + eps)

    def epoch():
        order = rng.permutation(len(work.x))
        for start in range(0, len(order), work.batch_size):
            index = order[start : start + work.batch_size]
            step(work.x[index], work.y[index])

    return epoch


PEERS = {"fastdnn": fastdnn_peer, "numpy": numpy_peer}


# -- the harness ----------------------------------------------------------------------------------------


def run(workloads, peers, rounds):
    rows = []
    for work in workloads:
        runners = {}
        for name in peers:
            try:
                runners[name] = PEERS[name](work)
                runners[name]()  # warm-up: compilation, first-touch of buffers
            except ImportError as error:
                print(f"  {name}: not available ({error})", file=sys.stderr)
        times = {name: [] for name in runners}
        for _ in range(rounds):
            for name, runner in runners.items():
                start = time.perf_counter()
                runner()
                times[name].append(time.perf_counter() - start)
        rows.append((work, {name: statistics.median(values) for name, values in times.items()}))
    return rows


def report(rows):
    blas = _blas_description()
    print(f"BLAS: {blas}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")
    for work, medians in rows:
        base = medians.get("fastdnn")
        print(f"\n{work.label}")
        for name, seconds in sorted(medians.items(), key=lambda item: item[1]):
            ratio = f"{seconds / base:6.2f}x fastdnn" if base else ""
            print(f"  {name:10s} {seconds:9.3f} s   {ratio}")


def _blas_description():
    try:
        from threadpoolctl import threadpool_info

        return ", ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, {i['num_threads']} threads)" for i in threadpool_info())
    except ImportError:
        return "threadpoolctl not installed"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["mlp", "digits", "all"], default="all")
    parser.add_argument("--batch-size", type=int, nargs="*", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--peers", nargs="*", default=list(PEERS))
    args = parser.parse_args(argv)
    workloads = []
    if args.workload in ("mlp", "all"):
        for batch in args.batch_size or [32, 128, 1024]:
            workloads.append(MLPEpoch("mnist-mlp", (784, 512, 256, 10), 60000, batch))
    if args.workload in ("digits", "all"):
        for batch in args.batch_size or [32]:
            workloads.append(MLPEpoch("digits-mlp", (64, 64, 10), 1347, batch))
    report(run(workloads, args.peers, args.rounds))


if __name__ == "__main__":
    main()
