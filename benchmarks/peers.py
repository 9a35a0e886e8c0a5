"""Side by side: the same work in fastdnn and in the libraries users would otherwise pick.

Peers: fastdnn, Keras 3 on the JAX backend, PyTorch (CPU, eager), and plain NumPy. The epoch
workloads run under three conditions (``--conditions``, or the shorthands ``--load N`` and
``--same-process``):

- ``idle``: each peer in a process of its own (``peers.py --worker``), as in separate scripts;
- ``loaded``: the same processes with N busy processes (``python -c "while True: pass"``) beside
  every measurement, the same for every peer, as on a machine doing something else; killed at the
  end of each workload however it ends;
- ``same-process``: every peer imported into this one process, as in a notebook comparing them,
  where each library's threads compete with the others'.

Every measurement is interleaved round by round between the peers (so that machine noise hits all
of them alike, with a short pause between runs so that one library's spinning threads do not eat
into the next one's time); tables give medians (and minima), ratios to fastdnn, and a summary
line per workload with fastdnn / Keras and fastdnn / PyTorch in each condition and each peer's
slowdown under load. ``--baseline FOLDER`` adds ``fastdnn-base``, the fastdnn found in FOLDER (an
older checkout), run beside the current one. A peer that is not installed is reported as "not
available" and skipped. The last table checks the performance targets of issue 4.

Workloads (``--workload``, several allowed; default ``all``):

- ``mlp``: one epoch of 60000 x 784 -> 512 -> 256 -> 10 (ReLU, softmax + crossentropy, Adam) at
  batch 32, 128 and 1024;
- ``lenet``: one epoch of LeNet-5 on ``--lenet-samples`` 28 x 28 x 1 images at batch 128;
- ``lstm``: one epoch of LSTM(128) over 50 steps of 32 features (``--lstm-samples``), batch 128;
- ``digits``: one epoch of 1347 x 64 -> 64 -> 10 at batch 32, in samples per second;
- ``optim``: one step of every fastdnn update rule over 10M float32 parameters, beside PyTorch's
  fused Adam and the memory-bandwidth floor (the bytes a rule must move over the ``np.copyto``
  bandwidth measured in the same run);
- ``flops``: training FLOP rate of the mnist MLP at batch 1024 against the sgemm rate of BLAS, measured
  in the same run on the same matrix shapes (and on 2048^3);
- ``breakdown``: fastdnn's mnist training step split into forward, loss + backward, optimizer and
  the step's matrix products alone, at batch 1, 32, 128 and 1024, with 2 threads and with 1;
- ``startup``: ``import`` plus the first digits epoch in a fresh process, with an empty and with a
  warm numba cache (``NUMBA_CACHE_DIR`` pointed at a new folder), and which kernels got compiled;
- ``memory``: peak and per-epoch resident memory of mnist epochs (batch 128) in a fresh process,
  against data + parameters (+ gradients and optimizer state) + one batch's activations.

    python benchmarks/peers.py                                   # everything, every peer found
    python benchmarks/peers.py --workload mlp --batch-size 128 --rounds 5
    python benchmarks/peers.py --workload optim flops --peers fastdnn torch
    python benchmarks/peers.py --workload mlp lenet lstm digits --conditions all --load 1

Unset ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` for the run on machines that set them (they slow
a current OpenBLAS): ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/peers.py``.
Peers are imported here only: none of them is a dependency of fastdnn.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

THREADS = 2  # BLAS / intra-op threads of every peer (--threads)
FASTDNN_THREADS = "auto"  # fastdnn's own choice, a pinned count or pool:N (--fastdnn-threads)
PEER_NAMES = ("fastdnn", "keras-jax", "torch", "numpy")


# -- workloads ----------------------------------------------------------------------------------------


class EpochWork:
    """One training epoch (Adam, lr 1e-3, softmax + sparse crossentropy, shuffled) on random data.

    Described by plain values (`spec`) so that a worker process builds the same work; the data
    come from a fixed seed. Subclasses give the model in each library.
    """

    kind = None

    def __init__(self, name, n_samples, batch_size, classes=10):
        self.name = name
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.classes = classes
        rng = np.random.default_rng(0)
        self.x = rng.random((n_samples, *self.sample_shape), dtype=np.float32)
        self.y = rng.integers(0, classes, n_samples)

    def spec(self):
        return {"kind": self.kind, **self._arguments()}

    @property
    def label(self):
        return f"{self.name} {len(self.x)}x{self.describe()} batch {self.batch_size} (1 epoch)"

    @property
    def flops(self):
        return float("nan")


class MLPEpoch(EpochWork):
    """ReLU hidden layers; ``sizes`` is (inputs, hidden..., classes)."""

    kind = "mlp"

    def __init__(self, name, sizes, n_samples, batch_size):
        self.sizes = tuple(sizes)
        self.sample_shape = (sizes[0],)
        super().__init__(name, n_samples, batch_size, sizes[-1])

    def _arguments(self):
        return {"name": self.name, "sizes": list(self.sizes), "n_samples": self.n_samples, "batch_size": self.batch_size}

    def describe(self):
        return "-".join(map(str, self.sizes))

    @property
    def flops(self):
        """Matrix-product FLOPs of one training epoch (forward, dW, and dX for all but the first layer)."""
        return len(self.x) * mlp_step_flops_per_sample(self.sizes)


class LeNetEpoch(EpochWork):
    """LeNet-5 on 28 x 28 x 1 images: conv 6@5x5 same, max pool 2, conv 16@5x5, max pool 2, dense 120, 84, 10."""

    kind = "lenet"
    sample_shape = (28, 28, 1)

    def _arguments(self):
        return {"name": self.name, "n_samples": self.n_samples, "batch_size": self.batch_size}

    def describe(self):
        return "28x28x1 LeNet-5"


class LSTMEpoch(EpochWork):
    """LSTM(units) over ``steps`` steps of ``features``, its last state into a softmax dense layer."""

    kind = "lstm"

    def __init__(self, name, n_samples, batch_size, steps=50, features=32, units=128):
        self.steps, self.features, self.units = steps, features, units
        self.sample_shape = (steps, features)
        super().__init__(name, n_samples, batch_size)

    def _arguments(self):
        return {"name": self.name, "n_samples": self.n_samples, "batch_size": self.batch_size,
                "steps": self.steps, "features": self.features, "units": self.units}

    def describe(self):
        return f"{self.steps}x{self.features} LSTM({self.units})"


WORK_KINDS = {"mlp": MLPEpoch, "lenet": LeNetEpoch, "lstm": LSTMEpoch}


def work_from_spec(spec):
    spec = dict(spec)
    return WORK_KINDS[spec.pop("kind")](**spec)


def mlp_step_flops_per_sample(sizes):
    products = [n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    return 2 * (3 * sum(products) - products[0])


# -- peers: each returns a callable that runs the workload once (the harness warms it up first) ----


def _fastdnn_threads(value):
    """``--fastdnn-threads``: auto, a positive count, or pool:N."""
    count = value.removeprefix("pool:")
    if value != "auto" and not (count.isdigit() and int(count) > 0):
        raise argparse.ArgumentTypeError(f"expected auto, a positive number or pool:N, received {value!r}")
    return value


def fastdnn_peer(work):
    import fastdnn as fd

    if FASTDNN_THREADS != "auto":
        pool = FASTDNN_THREADS.startswith("pool:")
        fd.set_num_threads(int(FASTDNN_THREADS.removeprefix("pool:")), pool=pool)
    model = fastdnn_model(work)
    model.fit(work.x[: 4 * work.batch_size], work.y[: 4 * work.batch_size], batch_size=work.batch_size, verbose=0)
    return lambda: model.fit(work.x, work.y, batch_size=work.batch_size, epochs=1, verbose=0)


def fastdnn_model(work):
    import fastdnn as fd

    fd.set_seed(0)
    L = fd.layers
    if work.kind == "mlp":
        return fastdnn_mlp(work.sizes)
    if work.kind == "lenet":
        layers = [L.Conv2D(6, 5, activation="relu", padding="same", input_shape=work.sample_shape), L.MaxPooling2D(2),
                  L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                  L.Dense(120, activation="relu"), L.Dense(84, activation="relu"), L.Dense(work.classes, activation="softmax")]
    else:
        layers = [L.LSTM(work.units, input_shape=work.sample_shape), L.Dense(work.classes, activation="softmax")]
    model = fd.Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def fastdnn_mlp(sizes):
    import fastdnn as fd

    fd.set_seed(0)
    layers = [fd.layers.Dense(sizes[1], activation="relu", input_shape=(sizes[0],))]
    layers += [fd.layers.Dense(units, activation="relu") for units in sizes[2:-1]]
    layers.append(fd.layers.Dense(sizes[-1], activation="softmax"))
    model = fd.Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def keras_peer(work):
    """Keras 3 on JAX, as a user writes it: Sequential, compile, fit on NumPy arrays (XLA-compiled steps)."""
    keras = _import_keras()
    keras.utils.set_random_seed(0)
    K = keras.layers
    if work.kind == "mlp":
        layers = [keras.Input(shape=(work.sizes[0],))]
        layers += [K.Dense(units, activation="relu") for units in work.sizes[1:-1]]
    elif work.kind == "lenet":
        layers = [keras.Input(shape=work.sample_shape), K.Conv2D(6, 5, activation="relu", padding="same"), K.MaxPooling2D(2),
                  K.Conv2D(16, 5, activation="relu"), K.MaxPooling2D(2), K.Flatten(),
                  K.Dense(120, activation="relu"), K.Dense(84, activation="relu")]
    else:
        layers = [keras.Input(shape=work.sample_shape), K.LSTM(work.units)]
    layers.append(K.Dense(work.classes, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy")
    model.fit(work.x[: 4 * work.batch_size], work.y[: 4 * work.batch_size], batch_size=work.batch_size, verbose=0)
    return lambda: model.fit(work.x, work.y, batch_size=work.batch_size, epochs=1, verbose=0)


def _import_keras():
    os.environ["KERAS_BACKEND"] = "jax"
    import jax  # noqa: F401  (ImportError here: JAX missing)
    import keras

    if keras.backend.backend() != "jax":
        raise ImportError(f"keras runs on {keras.backend.backend()!r}; set KERAS_BACKEND=jax before it is imported")
    return keras


def torch_peer(work):
    """PyTorch eager on the CPU: CrossEntropyLoss on logits, default Adam, index batching (a
    DataLoader, which collates sample by sample, would be slower); images channels first."""
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = torch_model(torch, work)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = work.x.transpose(0, 3, 1, 2).copy() if work.kind == "lenet" else work.x
    x, y = torch.from_numpy(x), torch.from_numpy(work.y)
    generator = torch.Generator().manual_seed(0)
    n, batch = len(work.x), work.batch_size

    def epoch():
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch):
            index = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            total += loss.item()
        return total

    return epoch


def torch_model(torch, work):
    nn = torch.nn
    if work.kind == "mlp":
        return torch_mlp(torch, work.sizes)
    if work.kind == "lenet":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, work.classes))

    class LastState(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(work.features, work.units, batch_first=True)
            self.dense = nn.Linear(work.units, work.classes)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.dense(out[:, -1])

    return LastState()


def torch_mlp(torch, sizes):
    modules = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        modules.append(torch.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            modules.append(torch.nn.ReLU())
    return torch.nn.Sequential(*modules)


def numpy_peer(work):
    """The same maths as a plain NumPy loop: what a careful user writes without a framework (MLPs only)."""
    if work.kind != "mlp":
        raise ImportError(f"no plain-NumPy {work.kind} (MLPs only)")
    _limit_numpy_blas()
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


def _limit_numpy_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(THREADS, user_api="blas")


PEERS = {"fastdnn": fastdnn_peer, "keras-jax": keras_peer, "torch": torch_peer, "numpy": numpy_peer}


# -- the harness ----------------------------------------------------------------------------------------

#: Conditions of the epoch workloads: each peer in a process of its own on a quiet machine, the same
#: beside ``--load`` busy processes, and every peer imported into this one process (a notebook).
CONDITIONS = ("idle", "loaded", "same-process")
_MARK = "@@peers "  # lines of the worker protocol on the worker's stdout


def interleave(runners, rounds, pause, inner=1):
    """Run every runner ``rounds`` times, one after the other in each round; per-call times by name.

    A `WorkerRunner` reports the time measured in its own process (without the pipe's latency).
    """
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            time.sleep(pause)
            start = time.perf_counter()
            for _ in range(inner):
                reported = runner()
            elapsed = (time.perf_counter() - start) / inner
            times[name].append(reported if isinstance(runner, WorkerRunner) else elapsed)
    return times


def make_runners(factories, announce):
    """Build and warm up each runner; a missing peer is announced and skipped, a failing one too."""
    runners = {}
    for name, factory in factories.items():
        try:
            runner = factory()
            runner()  # warm-up: compilation, first touch of buffers
        except ImportError as error:
            announce(f"{name}: not available ({error})")
            continue
        except Exception as error:  # a peer that breaks is reported, the others still run
            announce(f"{name}: failed ({type(error).__name__}: {error})")
            continue
        runners[name] = runner
    return runners


class WorkerRunner:
    """A peer in a process of its own (``peers.py --worker``): it builds and warms the work there,
    then runs one epoch per request and reports the time it measured.

    ``source`` is a folder to import fastdnn from (``--baseline``); by default the fastdnn this
    process would import.
    """

    def __init__(self, peer, work, source=None):
        import fastdnn

        root = source or os.path.dirname(os.path.dirname(os.path.abspath(fastdnn.__file__)))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        command = [sys.executable, os.path.abspath(__file__), "--worker", peer, "--spec", json.dumps(work.spec()),
                   "--threads", str(THREADS), "--fastdnn-threads", str(FASTDNN_THREADS)]
        self._log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env)
        try:
            self._expect()
        except BaseException:
            self.close()
            raise

    def _expect(self):
        for line in self.process.stdout:
            if not line.startswith(_MARK):
                continue
            kind, _, rest = line[len(_MARK) :].strip().partition(" ")
            if kind == "missing":
                raise ImportError(rest)
            if kind == "error":
                raise RuntimeError(rest)
            return rest
        self._log.seek(0)
        tail = self._log.read()[-600:]
        raise RuntimeError(f"worker exited with status {self.process.wait()}: {tail}")

    def __call__(self):
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return float(self._expect())

    def close(self):
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        self._log.close()


def worker_main(peer, spec):
    """The worker side of `WorkerRunner`: stdout carries the protocol, library chatter goes to stderr."""
    out, sys.stdout = sys.stdout, sys.stderr

    def say(line):
        print(_MARK + " ".join(str(line).split()), file=out, flush=True)

    try:
        runner = PEERS[peer.removesuffix("-base")](work_from_spec(spec))
    except ImportError as error:
        say(f"missing {error}")
        return
    except Exception as error:
        say(f"error {type(error).__name__}: {error}")
        return
    say("ready")
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        runner()
        say(f"time {time.perf_counter() - start!r}")


def busy_processes(count):
    """``count`` processes spinning beside the measurement; killed however the block ends (and each
    exits by itself if this process dies first)."""
    from benchmarks.common import BusyProcesses

    return BusyProcesses(count)


def run_epochs(workloads, peers, rounds, pause, notes, conditions=("same-process",), load=1, baseline=None):
    """Every workload by every peer under each condition; ``[(condition, work, {peer: times})]``.

    The separate-process conditions share one worker per peer and workload (built and warmed
    once): the idle rounds first, then the same rounds beside ``load`` busy processes. With
    ``baseline`` (a folder holding another fastdnn), ``fastdnn-base`` runs that one beside.
    """
    rows = []
    separate = [condition for condition in conditions if condition != "same-process"]
    names = list(peers) + (["fastdnn-base"] if baseline and separate else [])
    for work in workloads:
        if not separate:
            break
        factories = {name: (lambda name=name: WorkerRunner(name, work, baseline if name == "fastdnn-base" else None)) for name in names}
        runners = make_runners(factories, lambda line: notes.append(f"{work.label}: {line}"))
        try:
            for condition in separate:
                with busy_processes(load if condition == "loaded" else 0):
                    rows.append((condition, work, interleave(runners, rounds, pause)))
        finally:
            for runner in runners.values():
                runner.close()
    if "same-process" in conditions:
        for work in workloads:
            factories = {name: (lambda name=name: PEERS[name](work)) for name in peers}
            runners = make_runners(factories, lambda line: notes.append(f"{work.label} (same process): {line}"))
            rows.append(("same-process", work, interleave(runners, rounds, pause)))
    return rows


def summarize(values):
    return statistics.median(values), min(values)


def print_table(title, header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    print(f"\n{title}")
    print("  " + "  ".join(str(cell).rjust(width) if i else str(cell).ljust(width) for i, (cell, width) in enumerate(zip(header, widths))))
    print("  " + "  ".join("-" * width for width in widths))
    for row in rows:
        print("  " + "  ".join(str(cell).rjust(width) if i else str(cell).ljust(width) for i, (cell, width) in enumerate(zip(row, widths))))


def report_epochs(rows, results, load=1):
    for condition, work, times in rows:
        base = statistics.median(times["fastdnn"]) if times.get("fastdnn") else None
        table = []
        for name, values in sorted(times.items(), key=lambda item: statistics.median(item[1])):
            median, least = summarize(values)
            ratio = f"{median / base:.2f}" if base else "-"
            table.append(
                (name, f"{median:.3f}", f"{least:.3f}", ratio, f"{len(work.x) / median:,.0f}", f"{work.flops / median / 1e9:.1f}")
            )
            results.setdefault(("epoch", work.name, work.batch_size, name), median)
            results[("condition", condition, work.label, name)] = median
        print_table(
            f"{work.label}, {_condition_label(condition, load)}, {len(next(iter(times.values()), []))} rounds",
            ("peer", "median s", "min s", "x fastdnn", "samples/s", "GFLOP/s"),
            table,
        )


def _condition_label(condition, load):
    return {"idle": "each peer in its own process", "loaded": f"own processes, {load} busy beside",
            "same-process": "all peers in one process"}[condition]


def report_conditions(rows, results, load=1):
    """One line per workload: fastdnn's time over Keras's and PyTorch's in each condition, each
    peer's slowdown under load, and fastdnn's gain over ``--baseline`` (baseline time / fastdnn's)."""
    conditions = [c for c in CONDITIONS if any(row[0] == c for row in rows)]
    labels = list(dict.fromkeys(work.label for _, work, _ in rows))
    peers = list(dict.fromkeys(name for _, _, times in rows for name in times))

    def time_of(condition, label, peer):
        return results.get(("condition", condition, label, peer))

    def ratio(a, b):
        return f"{a / b:.2f}" if a and b else "-"

    header, table = ["workload"], []
    for condition in conditions:
        header += [f"{condition}: fd/keras", f"{condition}: fd/torch"]
    if {"idle", "loaded"} <= set(conditions):
        header += [f"{peer} loaded/idle" for peer in peers]
    if "fastdnn-base" in peers:
        header += [f"{condition}: base/fd" for condition in conditions if condition != "same-process"]
    for label in labels:
        row = [label.replace(" (1 epoch)", "")]
        for condition in conditions:
            mine = time_of(condition, label, "fastdnn")
            row += [ratio(mine, time_of(condition, label, "keras-jax")), ratio(mine, time_of(condition, label, "torch"))]
        if {"idle", "loaded"} <= set(conditions):
            row += [ratio(time_of("loaded", label, peer), time_of("idle", label, peer)) for peer in peers]
        if "fastdnn-base" in peers:
            row += [ratio(time_of(c, label, "fastdnn-base"), time_of(c, label, "fastdnn")) for c in conditions if c != "same-process"]
        table.append(row)
    print_table(f"epochs by condition (medians; fd/x below 1: fastdnn faster; loaded = {load} busy processes)", header, table)


# -- optimizer steps over 10M parameters -------------------------------------------------------------


def run_optim(size, rounds, pause, peers, results, notes):
    """Every fastdnn rule, PyTorch's Adam (fused, and foreach) and the copy bandwidth, interleaved."""
    import fastdnn as fd

    fd.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    start_params = rng.standard_normal(size, dtype=np.float32)
    grads = rng.standard_normal(size, dtype=np.float32) * np.float32(1e-3)
    factories, arrays_moved = {}, {}
    for rule in fd.optimizers.registry.names():
        optimizer = fd.optimizers.get(rule)
        optimizer.build(size, np.float32)
        # Read p and g, write p; read and write every state buffer.
        arrays_moved[f"fastdnn {rule}"] = 3 + 2 * len(optimizer.active_state())
        params = start_params.copy()
        factories[f"fastdnn {rule}"] = lambda o=optimizer, p=params: (lambda: o.step(p, grads))
    if "torch" in peers:
        for variant in ("fused", "foreach"):
            factories[f"torch adam ({variant})"] = lambda v=variant: _torch_adam_step(start_params, grads, v)
            arrays_moved[f"torch adam ({variant})"] = 7
    source, target = start_params, np.empty_like(start_params)
    factories["np.copyto"] = lambda: (lambda: np.copyto(target, source))
    arrays_moved["np.copyto"] = 2
    factories["np.copyto, 2 threads"] = lambda: _threaded_copy(target, source)
    arrays_moved["np.copyto, 2 threads"] = 2
    runners = make_runners(factories, lambda line: notes.append(f"optimizer steps: {line}"))
    times = interleave(runners, rounds, pause)

    medians = {name: statistics.median(values) for name, values in times.items()}
    bandwidth = arrays_moved["np.copyto"] * 4 * size / medians["np.copyto"]
    reference = medians.get("torch adam (fused)")
    table = []
    for name, median in sorted(medians.items(), key=lambda item: item[1]):
        moved = arrays_moved[name] * 4 * size
        floor = moved / bandwidth
        table.append(
            (
                name,
                f"{arrays_moved[name]} x 4N",
                f"{median * 1e3:.2f}",
                f"{min(times[name]) * 1e3:.2f}",
                f"{moved / median / 1e9:.1f}",
                f"{floor * 1e3:.2f}",
                f"{floor / median:.0%}",
                f"{median / reference:.2f}" if reference else "-",
            )
        )
        results[("optim", name)] = (median, floor / median, median / reference if reference else None)
    print_table(
        f"optimizer step over {size:,} float32 parameters, {rounds} rounds; floor = bytes / np.copyto bandwidth "
        f"({bandwidth / 1e9:.1f} GB/s, 1 thread)",
        ("update", "bytes", "median ms", "min ms", "GB/s", "floor ms", "floor/time", "x torch fused adam"),
        table,
    )


def _torch_adam_step(start_params, grads, variant):
    import torch

    torch.set_num_threads(THREADS)
    param = torch.nn.Parameter(torch.from_numpy(start_params.copy()))
    param.grad = torch.from_numpy(grads.copy())
    try:
        optimizer = torch.optim.Adam([param], lr=1e-3, eps=1e-7, **{variant: True})
        optimizer.step()
    except RuntimeError as error:
        raise ImportError(f"torch {torch.__version__} has no {variant} Adam on the CPU ({error})") from None
    return optimizer.step


def _threaded_copy(target, source):
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(2)
    half = len(source) // 2
    parts = [(target[:half], source[:half]), (target[half:], source[half:])]

    def copy():
        list(pool.map(lambda pair: np.copyto(*pair), parts))

    return copy


# -- FLOP rate at batch 1024 against the BLAS sgemm rate ------------------------------------------------


def run_flops(rounds, pause, results, notes, batch=1024, sizes=(784, 512, 256, 10), samples=60000):
    import fastdnn as fd

    fd.set_num_threads(THREADS)
    _limit_numpy_blas()
    work = MLPEpoch("mnist-mlp", sizes, samples, batch)
    step_flops = batch * mlp_step_flops_per_sample(sizes)
    steps = 10
    factories = {
        "fastdnn epoch (fit)": lambda: fastdnn_peer(work),
        "fastdnn _train_step x10": lambda: _fastdnn_steps(work, steps),
        "BLAS: the step's 8 sgemms x10 (numba np.dot, scipy's OpenBLAS)": lambda: _step_gemms(work, steps, "numba"),
        "BLAS: the step's 8 sgemms x10 (numpy's OpenBLAS)": lambda: _step_gemms(work, steps, "numpy"),
        "BLAS: 2048^3 sgemm (numpy's OpenBLAS)": _square_gemm,
    }
    flops = {
        "fastdnn epoch (fit)": work.flops,
        "fastdnn _train_step x10": steps * step_flops,
        "BLAS: the step's 8 sgemms x10 (numba np.dot, scipy's OpenBLAS)": steps * step_flops,
        "BLAS: the step's 8 sgemms x10 (numpy's OpenBLAS)": steps * step_flops,
        "BLAS: 2048^3 sgemm (numpy's OpenBLAS)": 2 * 2048**3,
    }
    runners = make_runners(factories, lambda line: notes.append(f"flops: {line}"))
    times = interleave(runners, rounds, pause)
    rates = {name: flops[name] / statistics.median(values) for name, values in times.items()}
    same_shapes = rates["BLAS: the step's 8 sgemms x10 (numba np.dot, scipy's OpenBLAS)"]
    square = rates["BLAS: 2048^3 sgemm (numpy's OpenBLAS)"]
    table = [
        (name, f"{statistics.median(times[name]):.4f}", f"{rate / 1e9:.1f}", f"{rate / same_shapes:.0%}", f"{rate / square:.0%}")
        for name, rate in sorted(rates.items(), key=lambda item: -item[1])
    ]
    for key in (("epoch", "mnist-mlp", batch, "keras-jax"), ("epoch", "mnist-mlp", batch, "torch")):
        if key in results:
            rate = work.flops / results[key]
            table.append((f"{key[3]} epoch (from the mlp table)", f"{results[key]:.4f}", f"{rate / 1e9:.1f}", f"{rate / same_shapes:.0%}", f"{rate / square:.0%}"))
    print_table(
        f"training FLOP rate, {'-'.join(map(str, sizes))} at batch {batch} ({step_flops / 1e9:.2f} GFLOP per step, "
        f"{work.flops / 1e9:.1f} per epoch), {rounds} rounds",
        ("work", "median s", "GFLOP/s", "of BLAS same shapes", "of BLAS 2048^3"),
        table,
    )
    results["flops"] = (rates["fastdnn epoch (fit)"], rates["fastdnn _train_step x10"], same_shapes, square)


def _fastdnn_steps(work, steps):
    model = fastdnn_mlp(work.sizes)
    xb, targets = model._data(work.x[: work.batch_size], work.y[: work.batch_size])
    xb, tb = np.ascontiguousarray(xb), model._kernel_targets(targets)

    def run():
        for _ in range(steps):
            model._train_step(xb, tb)

    return run


def _step_gemms(work, steps, via):
    """The matrix products of one training step of ``work``'s MLP, with the layouts fastdnn uses,
    through numba's ``np.dot`` (SciPy's OpenBLAS, ``via="numba"``) or NumPy's own (``"numpy"``: what
    fastdnn's Dense calls)."""
    rng = np.random.default_rng(0)
    n, sizes = work.batch_size, work.sizes
    calls = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        x = rng.random((n, n_in), dtype=np.float32)
        w = rng.random((n_in, n_out), dtype=np.float32)
        g = rng.random((n, n_out), dtype=np.float32)
        calls.append((x, w, np.empty((n, n_out), np.float32)))  # forward: x W
        calls.append((x.T, g, np.empty((n_in, n_out), np.float32)))  # dW = x^T g
        if k:
            calls.append((g, w.T, np.empty((n, n_in), np.float32)))  # dX = g W^T
    if via == "numba":
        import numba

        @numba.njit(nogil=True)
        def dot(a, b, out):
            np.dot(a, b, out)

    else:

        def dot(a, b, out):
            np.dot(a, b, out=out)

    def run():
        for _ in range(steps):
            for a, b, out in calls:
                dot(a, b, out)

    return run


def _square_gemm():
    rng = np.random.default_rng(0)
    a = rng.random((2048, 2048), dtype=np.float32)
    b = rng.random((2048, 2048), dtype=np.float32)
    out = np.empty_like(a)
    return lambda: np.dot(a, b, out=out)


# -- where a fastdnn training step spends its time ------------------------------------------------------


def run_breakdown(rounds, pause, results, notes, sizes=(784, 512, 256, 10), batches=(1, 32, 128, 1024)):
    """Split the mnist training step: forward, loss + backward, optimizer, and the step's sgemms alone.

    Uses the model's internals (``_forward``, ``_loss_and_gradients``, ``_train_step``, ``_store``);
    the non-GEMM time is the forward and backward passes minus their matrix products (bias,
    activations, fused loss, column sums and the Python calls around the kernels). The step is also
    timed with one thread, and ``fit``'s time per step comes from the mlp table when it ran.
    """
    import fastdnn as fd

    fd.set_num_threads(THREADS)
    table = []
    for batch in batches:
        work = MLPEpoch("mnist-mlp", sizes, max(2 * batch, 64), batch)
        model = fastdnn_mlp(sizes)
        model.fit(work.x, work.y, batch_size=batch, verbose=0)
        xb, targets = model._data(work.x[:batch], work.y[:batch])
        xb, tb = np.ascontiguousarray(xb), model._kernel_targets(targets)
        store, optimizer = model._store, model.optimizer
        repeat = max(1, 2048 // batch)
        gemms = _step_gemms(work, repeat, "numpy")  # the BLAS fastdnn's Dense calls (one thread pool)
        gemms()
        threads = lambda n: (lambda: fd.set_num_threads(n))  # noqa: E731
        parts = {
            "step": (threads(THREADS), lambda: model._train_step(xb, tb)),
            "step, 1 thread": (threads(1), lambda: model._train_step(xb, tb)),
            "forward": (threads(THREADS), lambda: model._forward(xb, True)),
            "forward + loss + backward": (threads(THREADS), lambda: model._loss_and_gradients(xb, tb)),
            "optimizer": (threads(THREADS), lambda: optimizer.step(store.params, store.grads, store.offsets)),
            "sgemms": (threads(THREADS), None),
        }
        times = {name: [] for name in parts}
        for _ in range(rounds):
            for name, (prepare, call) in parts.items():
                prepare()
                time.sleep(pause)
                start = time.perf_counter()
                if call is None:
                    gemms()
                else:
                    for _ in range(repeat):
                        call()
                times[name].append((time.perf_counter() - start) / repeat)
        fd.set_num_threads(THREADS)
        m = {name: statistics.median(values) * 1e3 for name, values in times.items()}
        backward = m["forward + loss + backward"] - m["forward"]
        non_gemm = m["forward + loss + backward"] - m["sgemms"]
        epoch = results.get(("epoch", "mnist-mlp", batch, "fastdnn"))
        per_step = epoch / -(-60000 // batch) * 1e3 if epoch else None
        table.append(
            (
                str(batch),
                f"{m['step']:.3f}",
                f"{m['step, 1 thread']:.3f}",
                f"{m['forward']:.3f}",
                f"{backward:.3f}",
                f"{m['optimizer']:.3f}",
                f"{m['sgemms']:.3f}",
                f"{m['sgemms'] / m['step']:.0%}",
                f"{non_gemm:.3f}",
                f"{m['optimizer'] / m['step']:.0%}",
                f"{per_step:.3f}" if per_step else "-",
                f"{per_step - m['step']:.3f}" if per_step else "-",
            )
        )
        results[("breakdown", batch)] = m
    print_table(
        f"fastdnn mnist training step {'-'.join(map(str, sizes))} split up, median ms per step, {rounds} rounds "
        "(non-GEMM = forward + loss + backward - sgemms; fit/step from the mlp table)",
        ("batch", "step", "1 thread", "forward", "loss+backward", "optimizer", "sgemms", "GEMM share", "non-GEMM", "optimizer share", "fit/step", "fit - step"),
        table,
    )


# -- start-up in a fresh process ------------------------------------------------------------------------

_DIGITS = """
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
rng = np.random.default_rng(0)
x = rng.random((1347, 64), dtype=np.float32)
y = rng.integers(0, 10, 1347)
t2 = time.perf_counter()
"""

STARTUP_CHILDREN = {
    "fastdnn": _DIGITS
    + """
import fastdnn as fd
t3 = time.perf_counter()
from numba.core.event import install_recorder
# numba reports each real compilation (not a load from its disk cache) as a "numba:compile" event
with install_recorder("numba:compile") as compilations:
    model = fd.Sequential([fd.layers.Dense(64, activation="relu", input_shape=(64,)), fd.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
t4 = time.perf_counter()
kernels = {}
for _, event in compilations.buffer:
    function = event.data["dispatcher"].py_func
    if event.is_start and function.__module__.startswith("fastdnn."):
        name = f"{function.__module__.rsplit('.', 1)[-1]}.{function.__name__}"
        kernels[name] = kernels.get(name, 0) + 1
print(json.dumps({"numpy": t1 - t0, "import": t3 - t2, "first_epoch": t4 - t3, "kernels": kernels}))
""",
    "torch": _DIGITS
    + """
import torch
t3 = time.perf_counter()
torch.set_num_threads(%(threads)d)
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
xt, yt = torch.from_numpy(x), torch.from_numpy(y)
order = torch.randperm(len(xt))
for start in range(0, len(xt), 32):
    index = order[start:start + 32]
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(xt[index]), yt[index])
    loss.backward()
    optimizer.step()
    loss.item()
t4 = time.perf_counter()
print(json.dumps({"numpy": t1 - t0, "import": t3 - t2, "first_epoch": t4 - t3}))
""",
    "keras-jax": _DIGITS
    + """
os.environ["KERAS_BACKEND"] = "jax"
import keras
t3 = time.perf_counter()
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, batch_size=32, epochs=1, verbose=0)
t4 = time.perf_counter()
print(json.dumps({"numpy": t1 - t0, "import": t3 - t2, "first_epoch": t4 - t3}))
""",
}
_STARTUP_IMPORTS = {"fastdnn": "fastdnn", "torch": "torch", "keras-jax": "keras"}


def _child(code, env=None, timeout=900):
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout
    )
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else f"exit {completed.returncode}")
    return json.loads(completed.stdout.strip().splitlines()[-1]), wall


def run_startup(rounds, cold_runs, peers, results, notes):
    available = []
    for name in peers:
        if name == "numpy":
            continue
        if importlib.util.find_spec(_STARTUP_IMPORTS[name]) is None or (name == "keras-jax" and importlib.util.find_spec("jax") is None):
            notes.append(f"start-up: {name}: not available")
            continue
        available.append(name)
    cache, cold_kernels, cached = None, {}, []
    measured = {}
    if "fastdnn" in available:
        for _ in range(cold_runs):  # each in a new empty cache; the last one is then the warm cache
            cache = tempfile.mkdtemp(prefix="fastdnn-peers-cache-")
            data, wall = _child(STARTUP_CHILDREN["fastdnn"], {"NUMBA_CACHE_DIR": cache})
            measured.setdefault("fastdnn, empty cache", []).append((data, wall))
            cold_kernels = data["kernels"]
        if cache is None:  # --cold-runs 0: warm up a cache of its own first
            cache = tempfile.mkdtemp(prefix="fastdnn-peers-cache-")
            _child(STARTUP_CHILDREN["fastdnn"], {"NUMBA_CACHE_DIR": cache})
        cached = sorted({f for _, _, files in os.walk(cache) for f in files if f.endswith(".nbi")})
    children = {name: STARTUP_CHILDREN[name] % {"threads": THREADS} if name == "torch" else STARTUP_CHILDREN[name] for name in available}
    environments = {"fastdnn": {"NUMBA_CACHE_DIR": cache}, "keras-jax": {"KERAS_BACKEND": "jax"}}
    failed = set()
    for _ in range(rounds):
        for name in available:
            if name in failed:
                continue
            label = "fastdnn, warm cache" if name == "fastdnn" else name
            try:
                measured.setdefault(label, []).append(_child(children[name], environments.get(name)))
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                notes.append(f"start-up: {name}: failed ({error})")
                failed.add(name)
    for folder in {os.path.dirname(cache)} if cache else ():
        for name in os.listdir(folder):
            if name.startswith("fastdnn-peers-cache-"):
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    base = None
    if "fastdnn, warm cache" in measured:
        base = statistics.median(d["import"] + d["first_epoch"] for d, _ in measured["fastdnn, warm cache"])
    table = []
    for label, samples in measured.items():
        imp = statistics.median(d["import"] for d, _ in samples)
        first = statistics.median(d["first_epoch"] for d, _ in samples)
        both = statistics.median(d["import"] + d["first_epoch"] for d, _ in samples)
        wall = statistics.median(w for _, w in samples)
        table.append((label, len(samples), f"{imp:.3f}", f"{first:.3f}", f"{both:.3f}", f"{both / base:.2f}" if base else "-", f"{wall:.3f}"))
        results[("startup", label)] = both
    print_table(
        "start-up in a fresh process: import + first digits epoch (1347x64-64-10, batch 32); medians in s",
        ("peer", "runs", "import", "first epoch", "import + epoch", "x fastdnn warm", "process wall"),
        table,
    )
    if cold_kernels:
        compiled = sum(cold_kernels.values())
        print(
            f"  empty cache: the first digits fit compiled {compiled} specializations of {len(cold_kernels)} fastdnn "
            f"kernels ({len(cached)} cache index files written): {', '.join(sorted(cold_kernels))}"
        )


# -- memory of training epochs in a fresh process -------------------------------------------------------

_MEMORY_COMMON = """
import json, os, sys, time, tracemalloc
import numpy as np
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE
def peak_rss():
    # VmHWM is this process's own high-water mark (ru_maxrss would include the parent's, inherited at exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
sizes, n, batch, epochs = %(sizes)r, %(samples)d, %(batch)d, %(epochs)d
rng = np.random.default_rng(0)
small_x = rng.random((2 * batch, sizes[0]), dtype=np.float32)
small_y = rng.integers(0, sizes[-1], 2 * batch)
"""

MEMORY_CHILDREN = {
    "fastdnn": """
import fastdnn as fd
imported = rss()
fd.set_num_threads(%(threads)d)
fd.set_seed(0)
layers = [fd.layers.Dense(sizes[1], activation="relu", input_shape=(sizes[0],))]
layers += [fd.layers.Dense(u, activation="relu") for u in sizes[2:-1]]
layers.append(fd.layers.Dense(sizes[-1], activation="softmax"))
model = fd.Sequential(layers)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(small_x, small_y, batch_size=batch, verbose=0)
def epoch():
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
""",
    "torch": """
import torch
imported = rss()
torch.set_num_threads(%(threads)d)
modules = []
for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
    modules.append(torch.nn.Linear(a, b))
    if i < len(sizes) - 2:
        modules.append(torch.nn.ReLU())
model = torch.nn.Sequential(*modules)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
def run(xs, ys):
    xt, yt = torch.from_numpy(xs), torch.from_numpy(ys)
    order = torch.randperm(len(xt))
    for start in range(0, len(xt), batch):
        index = order[start:start + batch]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt[index]), yt[index])
        loss.backward()
        optimizer.step()
        loss.item()
run(small_x, small_y)
def epoch():
    run(x, y)
""",
    "keras-jax": """
os.environ["KERAS_BACKEND"] = "jax"
import keras
imported = rss()
layers = [keras.Input((sizes[0],))] + [keras.layers.Dense(u, activation="relu") for u in sizes[1:-1]]
model = keras.Sequential(layers + [keras.layers.Dense(sizes[-1], activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(small_x, small_y, batch_size=batch, verbose=0)
def epoch():
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
""",
}

_MEMORY_RUN = """
base = rss()
x = rng.random((n, sizes[0]), dtype=np.float32)
y = rng.integers(0, sizes[-1], n)
with_data = rss()
reset = reset_peak_rss()
trace = %(trace)r
if trace:
    tracemalloc.start()
per_epoch, traced = [], []
for _ in range(epochs):
    epoch()
    per_epoch.append(rss())
    if trace:
        traced.append(tracemalloc.get_traced_memory()[0])
peak_traced = tracemalloc.get_traced_memory()[1] if trace else None
print(json.dumps({"imported": imported, "base": base, "with_data": with_data, "data": x.nbytes + y.nbytes, "per_epoch": per_epoch,
                  "traced": traced, "peak_traced": peak_traced,
                  "max_rss": peak_rss(), "peak_reset": reset}))
"""


def run_memory(peers, epochs, results, notes, sizes=(784, 512, 256, 10), samples=60000, batch=128):
    """Resident memory of ``epochs`` epochs in a fresh process per peer, after a warm-up fit on 2 batches.

    "fit overhead" is the peak during the epochs above the memory held before them (model, warm-up,
    data): what an epoch allocates on top. The bound it is checked against is the model's own memory
    (parameters, gradients, Adam's two moments) plus three copies of one batch's activations.
    """
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    model_bytes = 4 * params * 4
    activations = batch * sum(sizes) * 4
    bound = model_bytes + 3 * activations
    mib = 2**20
    table = []
    for name in peers:
        if name not in MEMORY_CHILDREN:
            continue
        module = {"fastdnn": "fastdnn", "torch": "torch", "keras-jax": "keras"}[name]
        if importlib.util.find_spec(module) is None:
            notes.append(f"memory: {name}: not available")
            continue
        values = {"sizes": sizes, "samples": samples, "batch": batch, "epochs": epochs, "threads": THREADS, "trace": name == "fastdnn"}
        code = (_MEMORY_COMMON + MEMORY_CHILDREN[name] + _MEMORY_RUN) % values
        try:
            data, _ = _child(code, {"KERAS_BACKEND": "jax"} if name == "keras-jax" else None)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            notes.append(f"memory: {name}: failed ({error})")
            continue
        if not data["peak_reset"]:
            notes.append(f"memory: {name}: could not reset the peak RSS mark; the peak includes start-up")
        overhead = max(data["max_rss"] - data["with_data"], 0)
        growth = data["per_epoch"][-1] - data["per_epoch"][0]
        table.append(
            (
                name,
                f"{(data['base'] - data['imported']) / mib:.1f}",
                f"{(data['with_data'] - data['base']) / mib:.1f}",
                f"{(data['max_rss'] - data['base']) / mib:.1f}",
                f"{overhead / mib:.1f}",
                f"{overhead / bound:.2f}",
                " ".join(f"{(v - data['base']) / mib:.1f}" for v in data["per_epoch"]),
                f"{growth / mib:+.1f}",
                f"{data['peak_traced'] / mib:.1f}" if data["peak_traced"] is not None else "-",
                f"{(data['traced'][-1] - data['traced'][0]) / mib:+.2f}" if data["traced"] else "-",
            )
        )
        results[("memory", name)] = (overhead, bound, growth, data)
    print_table(
        f"memory, {'-'.join(map(str, sizes))} on {samples} samples ({samples * sizes[0] * 4 / mib:.0f} MiB of x), batch "
        f"{batch}, {epochs} epochs, fresh process, RSS in MiB; bound = params + grads + Adam m, v "
        f"({model_bytes / mib:.1f}) + 3 x one batch's activations ({3 * activations / mib:.1f}) = {bound / mib:.1f}",
        (
            "peer",
            "model + warm-up",
            "data",
            "peak above model",
            "fit overhead",
            "x bound",
            "RSS above model after each epoch",
            "growth e1->eN",
            "tracemalloc peak",
            "traced growth",
        ),
        table,
    )


# -- the targets of issue 4 ---------------------------------------------------------------------------


def report_targets(results):
    rows = []

    def add(target, measured, met):
        rows.append((target, measured, "met" if met else "MISSED"))

    for batch in (32, 128, 1024):
        mine = results.get(("epoch", "mnist-mlp", batch, "fastdnn"))
        keras_time = results.get(("epoch", "mnist-mlp", batch, "keras-jax"))
        torch_time = results.get(("epoch", "mnist-mlp", batch, "torch"))
        if mine and keras_time:
            add(f"mnist epoch b{batch}: fastdnn <= Keras/JAX", f"{mine / keras_time:.2f} of Keras's time", mine <= keras_time)
        if mine and torch_time:
            add(f"mnist epoch b{batch}: fastdnn <= 0.6 x PyTorch", f"{mine / torch_time:.2f} of PyTorch's time", mine <= 0.6 * torch_time)
    mine = results.get(("epoch", "digits-mlp", 32, "fastdnn"))
    keras_time = results.get(("epoch", "digits-mlp", 32, "keras-jax"))
    if mine and keras_time:
        add("digits b32: >= 3 x Keras/JAX samples/s", f"{keras_time / mine:.2f} x", keras_time / mine >= 3)
    optim = {key[1]: value for key, value in results.items() if key[0] == "optim" and key[1].startswith("fastdnn")}
    for name, (median, floor_fraction, vs_torch) in sorted(optim.items()):
        if vs_torch is not None:
            add(f"{name} (10M): <= torch fused Adam time", f"{vs_torch:.2f} of its time", vs_torch <= 1.0)
        add(f"{name} (10M): >= 85% of bandwidth floor", f"{floor_fraction:.0%}", floor_fraction >= 0.85)
    if "flops" in results:
        fit_rate, step_rate, same_shapes, square = results["flops"]
        add("FLOP rate b1024 >= 75% of BLAS (same shapes)", f"{fit_rate / same_shapes:.0%} (epoch), {step_rate / same_shapes:.0%} (steps)", fit_rate >= 0.75 * same_shapes)
        add("FLOP rate b1024 >= 75% of BLAS (2048^3)", f"{fit_rate / square:.0%} (epoch), {step_rate / square:.0%} (steps)", fit_rate >= 0.75 * square)
    warm = results.get(("startup", "fastdnn, warm cache"))
    if warm is not None:
        add("import + first digits epoch, warm cache < 1 s", f"{warm:.2f} s", warm < 1.0)
    cold = results.get(("startup", "fastdnn, empty cache"))
    if cold is not None:
        rows.append(("import + first digits epoch, empty cache (reported)", f"{cold:.2f} s", "-"))
    if ("memory", "fastdnn") in results:
        overhead, bound, growth, data = results[("memory", "fastdnn")]
        add(
            "epoch peak memory near data + params + a batch",
            f"peak {(data['max_rss'] - data['imported']) / 2**20:.0f} MiB above the import = model + data + {overhead / 2**20:.1f} "
            f"(bound {bound / 2**20:.1f})",
            overhead <= bound,
        )
        add("no memory growth across epochs", f"{growth / 2**20:+.1f} MiB RSS", growth <= 1 * 2**20)
    if rows:
        print_table("targets (issue 4)", ("target", "measured", "status"), rows)


# -- main ---------------------------------------------------------------------------------------------


def describe_environment():
    lines = [f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs ({_cpu_model()})"]
    versions = []
    for distribution in ("fastdnn", "numba", "torch", "jax", "keras"):  # not imported: Keras picks its backend at import
        try:
            versions.append(f"{distribution} {importlib.metadata.version(distribution)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{distribution} not installed")
    lines.append(", ".join(versions))
    lines.append(
        "OPENBLAS_CORETYPE=" + os.environ.get("OPENBLAS_CORETYPE", "unset") + ", OPENBLAS_L2_SIZE=" + os.environ.get("OPENBLAS_L2_SIZE", "unset")
        + f", threads: fastdnn {'its own choice: 1 thread, OpenBLAS threads or its pool of one per core' if FASTDNN_THREADS == 'auto' else FASTDNN_THREADS} "
        f"(OpenBLAS); {THREADS} for NumPy (OpenBLAS) and torch (intra-op); XLA: its CPU pool, one thread per core"
    )
    lines.append(f"BLAS at the start: {_blas_description()}")
    lines.append(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return lines


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _blas_description():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{i['internal_api']} {i.get('version')} {i.get('architecture') or ''} kernel, {i['num_threads']} threads ({os.path.basename(i['filepath'])})"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


WORKLOADS = ("mlp", "lenet", "lstm", "digits", "optim", "flops", "breakdown", "startup", "memory")


def main(argv=None):
    global THREADS, FASTDNN_THREADS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # run one peer for a parent peers.py
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--workload", nargs="+", choices=WORKLOADS + ("all",), default=["all"])
    parser.add_argument("--batch-size", type=int, nargs="*", default=None, help="mlp batch sizes (default 32 128 1024)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the epoch workloads")
    parser.add_argument("--optim-rounds", type=int, default=15)
    parser.add_argument("--optim-size", type=int, default=10_000_000, help="parameters of the optimizer workload")
    parser.add_argument("--startup-rounds", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=2, help="start-ups with an empty cache")
    parser.add_argument("--memory-epochs", type=int, default=3)
    parser.add_argument("--mlp-samples", type=int, default=60000)
    parser.add_argument("--lenet-samples", type=int, default=4096)
    parser.add_argument("--lstm-samples", type=int, default=1024)
    parser.add_argument("--load", type=int, default=0, metavar="N", help="N busy processes beside every epoch measurement")
    parser.add_argument("--same-process", action="store_true", help="every peer imported in this one process (a notebook)")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS + ("all",), default=None,
                        help="epoch conditions (default: idle; loaded with --load; same-process with --same-process)")
    parser.add_argument("--baseline", metavar="FOLDER", help="also run the fastdnn found in FOLDER (as fastdnn-base) in its own processes")
    parser.add_argument("--fastdnn-threads", default="auto", type=_fastdnn_threads, help="fastdnn's threads: auto (its own choice), a number (that many BLAS threads) or pool:N (its pool of N)")
    parser.add_argument("--peers", nargs="*", default=list(PEER_NAMES), choices=PEER_NAMES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.25, help="seconds between runs, for spinning threads to settle")
    args = parser.parse_args(argv)
    THREADS, FASTDNN_THREADS = args.threads, args.fastdnn_threads
    if args.worker:
        return worker_main(args.worker, json.loads(args.spec))
    conditions = args.conditions or (["same-process"] if args.same_process else ["loaded"] if args.load else ["idle"])
    conditions = list(CONDITIONS) if "all" in conditions else conditions
    load = max(args.load, 1) if "loaded" in conditions else args.load
    chosen = WORKLOADS if "all" in args.workload else tuple(w for w in WORKLOADS if w in args.workload)
    if "fastdnn" not in args.peers:
        args.peers.insert(0, "fastdnn")
    for line in describe_environment():
        print(line)
    results, notes = {}, []
    started = time.perf_counter()
    epoch_workloads = []
    if "mlp" in chosen:
        for batch in args.batch_size or [32, 128, 1024]:
            epoch_workloads.append(MLPEpoch("mnist-mlp", (784, 512, 256, 10), args.mlp_samples, batch))
    if "lenet" in chosen:
        epoch_workloads.append(LeNetEpoch("lenet", args.lenet_samples, 128))
    if "lstm" in chosen:
        epoch_workloads.append(LSTMEpoch("lstm", args.lstm_samples, 128))
    if "digits" in chosen:
        epoch_workloads.append(MLPEpoch("digits-mlp", (64, 64, 10), 1347, 32))
    if epoch_workloads:
        print(f"epoch conditions: {', '.join(_condition_label(c, load) for c in conditions)}")
        with busy_processes(load if conditions == ["same-process"] else 0):  # --same-process --load N
            rows = run_epochs(epoch_workloads, args.peers, args.rounds, args.pause, notes, conditions, load, args.baseline)
        report_epochs(rows, results, load)
        report_conditions(rows, results, load)
    if "optim" in chosen:
        run_optim(args.optim_size, args.optim_rounds, min(args.pause, 0.05), args.peers, results, notes)
    if "flops" in chosen:
        run_flops(args.rounds, args.pause, results, notes, samples=args.mlp_samples)
    if "breakdown" in chosen:
        run_breakdown(args.rounds, min(args.pause, 0.05), results, notes)
    if "startup" in chosen:
        run_startup(args.startup_rounds, args.cold_runs, args.peers, results, notes)
    if "memory" in chosen:
        run_memory(args.peers, args.memory_epochs, results, notes, samples=args.mlp_samples)
    report_targets(results)
    if notes:
        print("\nnotes:")
        for line in notes:
            print(f"  {line}")
    print(f"\nBLAS libraries loaded by the end: {_blas_description()}")
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        print(f"torch ran with {torch.get_num_threads()} intra-op threads, MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}")
    if "jax" in sys.modules:
        print(f"jax ran on {sys.modules['jax'].devices()}")
    print(f"\nload average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {time.perf_counter() - started:.0f} s in all")
    return results


if __name__ == "__main__":
    # kill (SIGTERM) unwinds like Ctrl-C: the finally blocks stop the workers and busy processes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
