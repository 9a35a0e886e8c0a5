"""One training epoch of a LeNet-sized CNN and of an LSTM(128): fastdnn against Keras 3 on JAX and PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_layers.py [--rounds 5] [--quick]

Models (the same in every framework, Adam, sparse categorical crossentropy, batch 128, shuffled):

- ``cnn``: 28x28x1 random images, 10 classes: Conv2D(6, 5, relu) - MaxPool(2) - Conv2D(16, 5, relu)
  - MaxPool(2) - Flatten - Dense(120, relu) - Dense(84, relu) - Dense(10, softmax); 44,426 parameters.
- ``lstm``: sequences of 50 steps of 32 features, 10 classes: LSTM(128) - Dense(10, softmax).

``fastdnn`` runs with its default threads (numba's and OpenBLAS's: every core), ``fastdnn-1t`` after
``fd.set_num_threads(1)``. Each framework runs in its own worker process (so that thread pools do not compete), is warmed up
(compilation, first-touch allocation) with one untimed epoch, then the workers take turns: round r
times one epoch of every framework before round r + 1 starts. The table gives the median epoch
time per framework and its ratio to fastdnn's (above 1: fastdnn is faster). A framework that cannot
be imported is reported as missing. Random data: speed does not depend on what is learned.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

MODELS = {
    "cnn": {"n": 8192, "batch": 128, "shape": (28, 28, 1), "classes": 10},
    "lstm": {"n": 2048, "batch": 128, "shape": (50, 32), "classes": 10},
}
FRAMEWORKS = ("fastdnn", "fastdnn-1t", "keras-jax", "torch")
if os.environ.get("BENCH_LAYERS_QUICK"):  # --quick, seen by the workers too
    for _spec in MODELS.values():
        _spec["n"] //= 4


def _data(model):
    import numpy as np

    spec = MODELS[model]
    rng = np.random.default_rng(0)
    x = rng.random((spec["n"], *spec["shape"]), dtype=np.float32)
    y = rng.integers(0, spec["classes"], spec["n"])
    return x, y


# -- the three implementations ---------------------------------------------------------------------


def _fastdnn(model, threads=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, root)
    import fastdnn as fd

    if threads is not None:
        fd.set_num_threads(threads)

    L = fd.layers
    fd.set_seed(0)
    if model == "cnn":
        layers = [
            L.Input(MODELS["cnn"]["shape"]), L.Conv2D(6, 5, activation="relu"), L.MaxPooling2D(), L.Conv2D(16, 5, activation="relu"),
            L.MaxPooling2D(), L.Flatten(), L.Dense(120, activation="relu"), L.Dense(84, activation="relu"), L.Dense(10, activation="softmax"),
        ]
    else:
        layers = [L.Input(MODELS["lstm"]["shape"]), L.LSTM(128), L.Dense(10, activation="softmax")]
    net = fd.Sequential(layers)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data(model)
    batch = MODELS[model]["batch"]
    return lambda: net.fit(x, y, batch_size=batch, epochs=1, verbose=0)


def _keras_jax(model):
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    L = keras.layers
    keras.utils.set_random_seed(0)
    if model == "cnn":
        layers = [
            keras.Input(MODELS["cnn"]["shape"]), L.Conv2D(6, 5, activation="relu"), L.MaxPooling2D(), L.Conv2D(16, 5, activation="relu"),
            L.MaxPooling2D(), L.Flatten(), L.Dense(120, activation="relu"), L.Dense(84, activation="relu"), L.Dense(10, activation="softmax"),
        ]
    else:
        layers = [keras.Input(MODELS["lstm"]["shape"]), L.LSTM(128), L.Dense(10, activation="softmax")]
    net = keras.Sequential(layers)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data(model)
    batch = MODELS[model]["batch"]
    return lambda: net.fit(x, y, batch_size=batch, epochs=1, verbose=0)


def _torch(model):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if model == "cnn":

        class LeNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(
                    nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()
                )
                self.head = nn.Sequential(nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

            def forward(self, x):
                return self.head(self.features(x))

        net = LeNet()
        x, y = _data(model)
        x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()  # PyTorch convolutions are channels-first
    else:

        class Recurrent(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(32, 128, batch_first=True)
                self.head = nn.Linear(128, 10)

            def forward(self, x):
                out, _ = self.lstm(x)
                return self.head(out[:, -1])

        net = Recurrent()
        x, y = _data(model)
        x = torch.from_numpy(x)
    y = torch.from_numpy(y)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    batch = MODELS[model]["batch"]

    def epoch():
        order = torch.randperm(x.shape[0])
        for start in range(0, x.shape[0], batch):
            index = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[index]), y[index])
            loss.backward()
            optimizer.step()

    return epoch


BUILDERS = {"fastdnn": _fastdnn, "fastdnn-1t": lambda model: _fastdnn(model, threads=1), "keras-jax": _keras_jax, "torch": _torch}


# -- workers and the coordinator -------------------------------------------------------------------


def worker(framework, model):
    """Build, warm up, then time one epoch per line read from stdin ("run"); print JSON replies."""
    try:
        epoch = BUILDERS[framework](model)
        epoch()  # warm-up: compilation, allocation
    except Exception as error:  # a missing or broken peer is reported, not fatal
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        epoch()
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def _start(framework, model):
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--worker", framework, "--model", model],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _reply(process):
    for line in process.stdout:
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return {"error": f"worker exited with status {process.wait()}"}


def measure(model, frameworks, rounds):
    """Median epoch seconds per framework (None when unavailable), interleaving the workers' rounds."""
    workers, times, errors = {}, {}, {}
    for framework in frameworks:  # warm up one at a time, so compilations do not compete
        process = _start(framework, model)
        reply = _reply(process)
        if "error" in reply:
            errors[framework] = reply["error"]
            process.kill()
            continue
        workers[framework] = process
        times[framework] = []
    for _ in range(rounds):
        for framework, process in workers.items():
            process.stdin.write("run\n")
            process.stdin.flush()
            times[framework].append(_reply(process)["seconds"])
            time.sleep(0.2)  # let idle thread pools of this worker go to sleep before the next one runs
    for process in workers.values():
        process.stdin.close()
        process.wait()
    return {f: statistics.median(t) for f, t in times.items()}, times, errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per framework (default 5)")
    parser.add_argument("--models", default="cnn,lstm", help="comma-separated: cnn, lstm")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated: " + ", ".join(FRAMEWORKS))
    parser.add_argument("--quick", action="store_true", help="a quarter of the data and 3 rounds (a smoke run)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick and not os.environ.get("BENCH_LAYERS_QUICK"):
        os.environ["BENCH_LAYERS_QUICK"] = "1"
        for spec in MODELS.values():
            spec["n"] //= 4
    if args.quick:
        args.rounds = min(args.rounds, 3)
    if args.worker:
        worker(args.worker, args.model)
        return 0
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    print(f"one training epoch, median of {args.rounds} interleaved rounds (seconds); ratio = framework / fastdnn")
    print(f"{'model':28s} {'framework':10s} {'median':>8s} {'ratio':>6s}  all rounds")
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        medians, times, errors = measure(model, frameworks, args.rounds)
        spec = MODELS[model]
        label = f"{model} (n={spec['n']}, batch {spec['batch']})"
        base = medians.get("fastdnn")
        for framework in frameworks:
            if framework in errors:
                print(f"{label:28s} {framework:10s} {'-':>8s} {'-':>6s}  unavailable: {errors[framework][:70]}")
                continue
            ratio = f"{medians[framework] / base:6.2f}" if base else "     -"
            rounds = " ".join(f"{t:.3f}" for t in times[framework])
            print(f"{label:28s} {framework:10s} {medians[framework]:8.3f} {ratio}  {rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
