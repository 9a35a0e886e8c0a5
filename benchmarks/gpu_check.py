"""One script for a real GPU: every CUDA kernel checked, models trained, and timings beside PyTorch CUDA.

    pip install 'fastdnn[cuda]' torch        # torch (CUDA build) only for the side-by-side columns
    python benchmarks/gpu_check.py --json gpu.json       # on a machine with an NVIDIA GPU
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu_check.py --tiny   # the same script, simulated, tiny sizes

Sections (each runs even when an earlier one failed; ``--only`` picks some):

``kernels``    every CUDA kernel against its CPU twin (``fastdnn.verify.agreement``, float64 and float32) and
               the model gradients through the CUDA kernels against finite differences (what
               ``fastdnn-gradcheck --device cuda`` runs);
``accuracy``   an MLP, a CNN and an LSTM trained on scikit-learn's digits on the CPU and on the GPU
               with the same seed: test accuracy of each;
``optim``      every optimizer rule's fused step over 100M float32 parameters, against PyTorch's fused
               Adam, and its bandwidth against the device's copy bandwidth;
``gemm``       the numba-only GEMM (no cuBLAS), 8192^3 float32, for several tile/register shapes,
               against cuBLAS float32 (TF32 off);
``step``       an MLP training step at batch 4096 with 4096-wide hidden layers, products by numba and
               by cuBLAS through CuPy, against PyTorch;
``epochs``     an MNIST-shaped MLP epoch (b128), a LeNet epoch and an LSTM(128) epoch against PyTorch,
               with the host-device bytes and the kernel launches of one fastdnn epoch;
``staging``    data parallel's staged gradient transport (`fastdnn.device_parallel.GradientReduction`)
               on this GPU, without MPI: a stand-in second rank's gradients summed into the device
               buffer (checked), and the step's two copies through page-locked memory timed for the
               MNIST MLP's gradient buffer and for 100M parameters, beside pageable host memory.

Timings are medians of repeated runs after a warm-up, synchronized. Exit status 0 when every
correctness check passes, 1 otherwise, 2 without CUDA.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastdnn as fd  # noqa: E402
from fastdnn import backend, config  # noqa: E402

SECTIONS = ("kernels", "accuracy", "optim", "gemm", "step", "epochs", "staging")
RESULTS = {}


def _sizes(tiny):
    if tiny:
        return {"shapes": (5, 7, 6), "optim": 256, "staging": (1000, 5000), "gemm": 16, "gemm_shapes": ((4, 2), (2, 2)), "step": (16, 8, 8),
                "repeats": 1, "mlp_n": 256, "mlp_dims": (20, 16, 8, 10), "workloads": ("mlp",), "lenet_n": 8, "lstm_n": 8, "lstm_steps": 3, "epochs": 1,
                "digits_epochs": 1, "digits_n": 64, "digits_models": ("MLP 64-64-10",)}
    return {"shapes": (67, 45, 131), "optim": 100_000_000, "staging": (535_818, 100_000_000), "gemm": 8192, "gemm_shapes": ((16, 4), (16, 8), (8, 8), (32, 4)),
            "step": (4096, 4096, 784), "repeats": 10, "mlp_n": 60000, "mlp_dims": (784, 512, 256, 10), "workloads": ("mlp", "lenet", "lstm"), "lenet_n": 60000, "lstm_n": 12800, "lstm_steps": 50,
            "epochs": 3, "digits_epochs": 15, "digits_n": None,
            "digits_models": ("MLP 64-64-10", "CNN conv16-pool-conv32-gap", "LSTM(32) over 8 rows")}


def _median_time(function, synchronize, repeats, warmup=1):
    for _ in range(warmup):
        function()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def device_name():
    if backend.simulating():
        return "the CUDA simulator"
    from numba import cuda

    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def environment():
    import numba

    info = {"device": device_name(), "numba": numba.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["numba-cuda"] = version("numba-cuda")
    torch = _torch_cuda()
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch cuda"] = torch.version.cuda
    with contextlib.suppress(Exception):
        import cupy

        info["cupy"] = cupy.__version__
    if not backend.simulating():
        from numba import cuda

        device = cuda.get_current_device()
        info["compute capability"] = ".".join(map(str, device.compute_capability))
        info["multiprocessors"] = device.MULTIPROCESSOR_COUNT
        info["driver"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
    return info


# -- counters: host-device bytes and kernel launches ------------------------------------------------


class Counters:
    """Counts bytes copied host->device and device->host, and numba kernel launches, while active."""

    def __init__(self):
        self.h2d = self.d2h = self.launches = 0
        self.h2d_calls = self.d2h_calls = 0

    @contextlib.contextmanager
    def active(self):
        if backend.simulating():  # the simulator has neither the driver's copies nor its launches
            yield self
            return
        from numba.cuda import dispatcher
        from numba.cuda.cudadrv import driver

        saved = driver.host_to_device, driver.device_to_host, dispatcher._LaunchConfiguration.__call__
        counters = self

        def host_to_device(dst, src, size, stream=0):
            counters.h2d += int(size)
            counters.h2d_calls += 1
            return saved[0](dst, src, size, stream)

        def device_to_host(dst, src, size, stream=0):
            counters.d2h += int(size)
            counters.d2h_calls += 1
            return saved[1](dst, src, size, stream)

        def launch(self_, *args):
            counters.launches += 1
            return saved[2](self_, *args)

        driver.host_to_device, driver.device_to_host, dispatcher._LaunchConfiguration.__call__ = host_to_device, device_to_host, launch
        try:
            yield self
        finally:
            driver.host_to_device, driver.device_to_host, dispatcher._LaunchConfiguration.__call__ = saved


# -- correctness --------------------------------------------------------------------------------------


def check_kernels(sizes):
    from fastdnn.verify import agreement, report

    results, seconds = agreement.run(shapes=sizes["shapes"])
    failed = [r for r in results if not r.passed]
    if failed:
        print(agreement.table(failed))
    print(agreement.summary(results, seconds))
    gradients, gradient_seconds = agreement.gradient_run(mode="random" if backend.simulating() else None)
    if report.failures(gradients):
        print(report.failures(gradients))
    print("model gradients through the CUDA kernels: " + report.summary(gradients, gradient_seconds))
    RESULTS["kernels"] = {
        "kernel checks": len(results), "kernel failures": [f"{r.kernel} {r.dtype}: {r.max_abs_error:.3g} {r.error}" for r in failed],
        "kernel seconds": seconds, "gradient checks": len(gradients), "gradient failures": sum(not r.passed for r in gradients),
        "gradient seconds": gradient_seconds,
    }
    return not failed and all(r.passed for r in gradients)


def _digits(limit):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target
    if limit:
        x, y = x[:limit], y[:limit]
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y if not limit else None)


def _digits_model(kind):
    L = fd.layers
    if kind == "MLP 64-64-10":
        return [L.Flatten(input_shape=(8, 8)), L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")]
    if kind == "CNN conv16-pool-conv32-gap":
        return [L.Reshape((8, 8, 1), input_shape=(8, 8)), L.Conv2D(16, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
                L.Conv2D(32, 3, padding="same", activation="relu"), L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")]
    return [L.LSTM(32, input_shape=(8, 8)), L.Dense(10, activation="softmax")]


def check_accuracy(sizes):
    x_train, x_test, y_train, y_test = _digits(sizes["digits_n"])
    rows, ok = [], True
    for kind in sizes["digits_models"]:
        accuracies = {}
        for device in ("cpu", "cuda"):
            fd.set_seed(0)
            model = fd.Sequential(_digits_model(kind))
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], device=device)
            start = time.perf_counter()
            model.fit(x_train, y_train, batch_size=32, epochs=sizes["digits_epochs"], verbose=0)
            seconds = time.perf_counter() - start
            accuracies[device] = (model.evaluate(x_test, y_test, verbose=0)[1], seconds)
        (cpu, cpu_s), (gpu, gpu_s) = accuracies["cpu"], accuracies["cuda"]
        good = abs(cpu - gpu) <= 0.02 and (sizes["digits_n"] or min(cpu, gpu) >= 0.9)
        ok = ok and bool(good)
        rows.append({"model": kind, "cpu accuracy": cpu, "gpu accuracy": gpu, "cpu s": cpu_s, "gpu s (first includes compile)": gpu_s, "ok": bool(good)})
        print(f"  {kind:28s} test accuracy CPU {cpu:.4f}  GPU {gpu:.4f}  {'ok' if good else 'DIFFERENT'}")
    RESULTS["accuracy"] = rows
    return ok


# -- timings ------------------------------------------------------------------------------------------


def _copy_bandwidth(torch, n):
    a = torch.rand(n, device="cuda")
    b = torch.empty_like(a)
    seconds = _median_time(lambda: b.copy_(a), torch.cuda.synchronize, 20, warmup=3)
    return 8 * n / seconds / 1e9  # bytes read + written


def time_optim(sizes):
    from numba import cuda

    from fastdnn.kernels.cuda import optim

    n, repeats = sizes["optim"], sizes["repeats"]
    torch = _torch_cuda()
    f = np.float32
    rng = np.random.default_rng(0)
    sync = cuda.synchronize
    p, g, s1, s2 = (cuda.to_device(rng.random(n, dtype=np.float32)) for _ in range(4))
    empty = cuda.device_array(0, np.float32)
    rules = {  # name: (launch, bytes per element read + written)
        "sgd": (lambda: optim.sgd_step(p, g, f(1e-3)), 12),
        "momentum": (lambda: optim.momentum_step(p, g, s1, f(1e-3), f(0.9), False), 20),
        "nag": (lambda: optim.momentum_step(p, g, s1, f(1e-3), f(0.9), True), 20),
        "adagrad": (lambda: optim.adagrad_step(p, g, s1, f(1e-3), f(1e-7)), 20),
        "rmsprop": (lambda: optim.rmsprop_step(p, g, s1, empty, empty, f(1e-3), f(0.9), f(0.0), f(1e-7), False), 20),
        "adadelta": (lambda: optim.adadelta_step(p, g, s1, s2, f(1e-3), f(0.95), f(1e-7)), 28),
        "adam": (lambda: optim.adam_step(p, g, s1, s2, empty, f(1e-3), f(0.9), f(0.999), f(1e-7), False), 28),
    }
    torch_adam = copy_gbs = None
    if torch is not None:
        copy_gbs = _copy_bandwidth(torch, n)
        tp = torch.rand(n, device="cuda", requires_grad=True)
        tp.grad = torch.rand(n, device="cuda")
        adam = torch.optim.Adam([tp], lr=1e-3, fused=True)
        torch_adam = _median_time(adam.step, torch.cuda.synchronize, repeats, warmup=2)
        del tp, adam
    rows = []
    for name, (launch, per_element) in rules.items():
        seconds = _median_time(launch, sync, repeats, warmup=2)
        gbs = per_element * n / seconds / 1e9
        rows.append({"rule": name, "ms": seconds * 1e3, "GB/s": gbs, "/ torch fused Adam": seconds / torch_adam if torch_adam else None,
                     "of copy bandwidth": gbs / copy_gbs if copy_gbs else None})
    RESULTS["optim"] = {"parameters": n, "torch fused adam ms": torch_adam * 1e3 if torch_adam else None, "copy GB/s": copy_gbs, "rules": rows}
    print(f"  copy bandwidth {copy_gbs or float('nan'):.0f} GB/s; torch fused Adam {torch_adam * 1e3 if torch_adam else float('nan'):.3f} ms")
    for row in rows:
        ratio = row["/ torch fused Adam"]
        print(f"  {row['rule']:9s} {row['ms']:8.3f} ms  {row['GB/s']:7.0f} GB/s  / torch Adam {ratio or float('nan'):5.2f}  of copy {row['of copy bandwidth'] or float('nan'):.0%}")


def time_gemm(sizes):
    from numba import cuda

    from fastdnn.kernels.cuda import dense

    size, repeats = sizes["gemm"], max(3, sizes["repeats"] // 2)
    rng = np.random.default_rng(0)
    host_a = rng.standard_normal((size, size), dtype=np.float32)
    host_b = rng.standard_normal((size, size), dtype=np.float32)
    a, b = cuda.to_device(host_a), cuda.to_device(host_b)
    c = cuda.device_array((size, size), np.float32)
    torch = _torch_cuda()
    cublas = None
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 against float32
        ta, tb = torch.from_numpy(host_a).cuda(), torch.from_numpy(host_b).cuda()
        cublas = _median_time(lambda: ta @ tb, torch.cuda.synchronize, repeats, warmup=2)
        expected = (ta.double() @ tb.double()).cpu().numpy()
    else:
        expected = host_a.astype(np.float64) @ host_b.astype(np.float64)
    saved = config.GEMM, config.CUDA_TILE, config.CUDA_GEMM_REG
    rows = []
    try:
        config.GEMM = "numba"
        for tile, reg in sizes["gemm_shapes"]:
            config.CUDA_TILE, config.CUDA_GEMM_REG = tile, reg
            try:
                seconds = _median_time(lambda: dense.gemm(a, b, c), cuda.synchronize, repeats)
            except Exception as error:  # a shape the device cannot launch (too many threads or registers)
                rows.append({"tile": tile, "reg": reg, "error": f"{type(error).__name__}: {error}"})
                print(f"  tile {tile} reg {reg}: {type(error).__name__}: {error}")
                continue
            got = c.copy_to_host()
            rel = float(np.linalg.norm(got - expected) / np.linalg.norm(expected))
            tflops = 2 * size**3 / seconds / 1e12
            ratio = cublas / seconds if cublas else None
            rows.append({"tile": tile, "reg": reg, "ms": seconds * 1e3, "TFLOP/s": tflops, "of cuBLAS": ratio, "rel error": rel})
            print(f"  numba GEMM {size}^3 tile {tile:2d} reg {reg}: {seconds * 1e3:8.2f} ms  {tflops:6.2f} TFLOP/s  {ratio or float('nan'):.0%} of cuBLAS  rel err {rel:.1e}")
    finally:
        config.GEMM, config.CUDA_TILE, config.CUDA_GEMM_REG = saved
    RESULTS["gemm"] = {"size": size, "cublas ms": cublas * 1e3 if cublas else None,
                       "cublas TFLOP/s": 2 * size**3 / cublas / 1e12 if cublas else None, "numba": rows}
    if cublas:
        print(f"  cuBLAS float32 (TF32 off): {cublas * 1e3:.2f} ms, {2 * size**3 / cublas / 1e12:.2f} TFLOP/s")


def _mlp_model(sizes_list, device):
    L = fd.layers
    layers = [L.Dense(sizes_list[1], activation="relu", input_shape=(sizes_list[0],))]
    layers += [L.Dense(h, activation="relu") for h in sizes_list[2:-1]]
    layers.append(L.Dense(sizes_list[-1], activation="softmax"))
    fd.set_seed(0)
    model = fd.Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", device=device)
    return model


def time_step(sizes):
    from numba import cuda

    batch, hidden, n_in = sizes["step"]
    repeats = sizes["repeats"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n_in), dtype=np.float32)
    y = rng.integers(0, 10, size=batch)
    torch = _torch_cuda()
    theirs = None
    if torch is not None:
        torch.backends.cuda.matmul.allow_tf32 = False
        net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(hidden, 10)).cuda()
        opt = torch.optim.Adam(net.parameters(), fused=True)
        tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
        loss_fn = torch.nn.CrossEntropyLoss()

        def torch_step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(tx), ty)
            loss.backward()
            opt.step()
            return loss.item()  # fastdnn's step brings the loss back too

        theirs = _median_time(torch_step, torch.cuda.synchronize, repeats, warmup=3)
    flops = 6 * batch * (n_in * hidden + hidden * hidden + hidden * 10)
    rows = []
    saved = config.GEMM
    for gemm in ("numba", "cupy"):
        if gemm == "cupy" and not _has_cupy():
            continue
        config.GEMM = gemm
        try:
            model = _mlp_model((n_in, hidden, hidden, 10), "cuda")
            engine = backend.engine_for(model)
            engine.push_params()
            xb, tb = cuda.to_device(x), cuda.to_device(y.astype(np.int64).reshape(-1, 1))
            engine._attach_optimizer()
            try:
                ours = _median_time(lambda: engine.train_step(xb, model._kernel_targets(tb)), cuda.synchronize, repeats, warmup=3)
            finally:
                engine._detach_optimizer()
        finally:
            config.GEMM = saved
        rows.append({"gemm": gemm, "ms": ours * 1e3, "TFLOP/s": flops / ours / 1e12, "/ torch": ours / theirs if theirs else None})
        print(f"  MLP step b{batch} h{hidden} ({gemm}): {ours * 1e3:.2f} ms  {flops / ours / 1e12:.1f} TFLOP/s  / torch {ours / theirs if theirs else float('nan'):.2f}")
    RESULTS["step"] = {"batch": batch, "hidden": hidden, "torch ms": theirs * 1e3 if theirs else None, "fastdnn": rows}
    if theirs:
        print(f"  torch: {theirs * 1e3:.2f} ms")


def _has_cupy():
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


class _EpochTimes(fd.callbacks.Callback):
    def __init__(self, synchronize):
        super().__init__()
        self.synchronize = synchronize
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.synchronize()
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.synchronize()
        self.times.append(time.perf_counter() - self._start)


def _workloads(sizes):
    L = fd.layers
    rng = np.random.default_rng(0)

    def mlp():
        n_in, h1, h2, classes = sizes["mlp_dims"]
        return [L.Dense(h1, activation="relu", input_shape=(n_in,)), L.Dense(h2, activation="relu"), L.Dense(classes, activation="softmax")]

    def lenet():
        return [L.Conv2D(6, 5, padding="same", activation="relu", input_shape=(28, 28, 1)), L.MaxPooling2D(2),
                L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                L.Dense(120, activation="relu"), L.Dense(84, activation="relu"), L.Dense(10, activation="softmax")]

    def lstm():
        return [L.LSTM(128, input_shape=(sizes["lstm_steps"], 32)), L.Dense(10, activation="softmax")]

    def torch_mlp(nn):
        n_in, h1, h2, classes = sizes["mlp_dims"]
        return nn.Sequential(nn.Linear(n_in, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, classes))

    def torch_lenet(nn):
        class LeNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
                self.head = nn.Sequential(nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

            def forward(self, x):  # channels last in, as fastdnn takes it
                return self.head(self.features(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))

        return LeNet()

    def torch_lstm(nn):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(32, 128, batch_first=True)
                self.head = nn.Linear(128, 10)

            def forward(self, x):
                return self.head(self.lstm(x)[0][:, -1])

        return Net()

    def data(shape, n):
        return rng.random((n, *shape), dtype=np.float32), rng.integers(0, 10, n)

    workloads = {
        "mlp": (f"MNIST MLP {'-'.join(map(str, sizes['mlp_dims']))} b128", mlp, torch_mlp, lambda: data(sizes["mlp_dims"][:1], sizes["mlp_n"])),
        "lenet": ("LeNet 28x28 b128", lenet, torch_lenet, lambda: data((28, 28, 1), sizes["lenet_n"])),
        "lstm": (f"LSTM(128) x {sizes['lstm_steps']} steps b128", lstm, torch_lstm, lambda: data((sizes["lstm_steps"], 32), sizes["lstm_n"])),
    }
    return [workloads[name] for name in sizes["workloads"]]


def _torch_epochs(torch, make, x, y, epochs, sync_loss):
    net = make(torch.nn).cuda()
    opt = torch.optim.Adam(net.parameters(), fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    n = tx.shape[0]
    times = []
    for _ in range(epochs + 1):  # the first is a warm-up (cuDNN autotuning, allocator)
        torch.cuda.synchronize()
        start = time.perf_counter()
        order = torch.randperm(n, device="cuda")
        total = torch.zeros((), device="cuda")
        for begin in range(0, n, 128):
            index = order[begin : begin + 128]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(tx[index]), ty[index])
            loss.backward()
            opt.step()
            if sync_loss:
                total += loss.item()
            else:
                total += loss.detach()
        float(total)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def launch_overhead(torch):
    """Host microseconds per launch of a one-element kernel (numba, and PyTorch's add), launched
    back to back without waiting: what a step of many small kernels pays per kernel."""
    from numba import cuda

    from fastdnn.kernels.cuda import optim

    p, g = cuda.to_device(np.ones(1, np.float32)), cuda.to_device(np.ones(1, np.float32))
    launches = 2000
    ours = _median_time(lambda: [optim.sgd_step(p, g, np.float32(1e-3)) for _ in range(launches)], cuda.synchronize, 3) / launches
    theirs = None
    if torch is not None:
        t = torch.ones(1, device="cuda")
        theirs = _median_time(lambda: [t.add_(1.0) for _ in range(launches)], torch.cuda.synchronize, 3) / launches
    return ours * 1e6, theirs * 1e6 if theirs else None


def time_epochs(sizes):
    from numba import cuda

    torch = _torch_cuda()
    rows = []
    if not backend.simulating():
        ours, theirs = launch_overhead(torch)
        RESULTS["launch us"] = {"numba": ours, "torch": theirs}
        print(f"  launch overhead: numba {ours:.1f} us, torch {theirs or float('nan'):.1f} us per kernel")
    for name, make, make_torch, make_data in _workloads(sizes):
        x, y = make_data()
        model = fd.Sequential(make())
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", device="cuda")
        model.fit(x[:256], y[:256], batch_size=128, epochs=1, verbose=0)  # compile the kernels
        timer = _EpochTimes(cuda.synchronize)
        model.fit(x, y, batch_size=128, epochs=sizes["epochs"], verbose=0, callbacks=[timer])
        ours = statistics.median(timer.times[1:] if len(timer.times) > 1 else timer.times)
        counters = Counters()
        with counters.active():
            model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        steps = -(-len(x) // 128)
        traffic = {"h2d bytes": counters.h2d, "d2h bytes": counters.d2h, "h2d copies": counters.h2d_calls, "d2h copies": counters.d2h_calls,
                   "launches per step": counters.launches / steps, "data bytes": x.nbytes + y.nbytes}
        metric_counters = Counters()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], device="cuda")
        with metric_counters.active():
            model.fit(x, y, batch_size=128, epochs=1, verbose=0)
        traffic["with accuracy metric: d2h bytes"] = metric_counters.d2h
        theirs = theirs_async = None
        if torch is not None:
            theirs = _torch_epochs(torch, make_torch, x, y, sizes["epochs"], True)
            theirs_async = _torch_epochs(torch, make_torch, x, y, sizes["epochs"], False)
        rows.append({"workload": name, "samples": len(x), "fastdnn s": ours, "torch s (loss.item() per batch)": theirs,
                     "torch s (no sync)": theirs_async, "/ torch": ours / theirs if theirs else None,
                     "/ torch no sync": ours / theirs_async if theirs_async else None, **traffic})
        print(f"  {name:34s} n={len(x)}: fastdnn {ours:.3f} s  torch {theirs or float('nan'):.3f} s (no sync {theirs_async or float('nan'):.3f})  "
              f"ratio {ours / theirs if theirs else float('nan'):.2f}")
        print(f"     one epoch: h2d {counters.h2d:,} B in {counters.h2d_calls} copies (data {x.nbytes + y.nbytes:,} B), d2h {counters.d2h:,} B in "
              f"{counters.d2h_calls} copies, {counters.launches / steps:.1f} launches/step; with accuracy: d2h {metric_counters.d2h:,} B")
    RESULTS["epochs"] = rows


class _StandInRank:
    """A data-parallel strategy of two ranks without MPI: the "other rank" adds ``other`` (or nothing)."""

    size = 2

    def __init__(self, other=None):
        self.other = other

    def reduce_step(self, store, loss_value, n_local, n_global):
        buffer = store.reduction
        buffer[-1] = loss_value * n_local / n_global
        if self.other is not None:
            buffer += self.other
        return float(buffer[-1])


def check_staging(sizes):
    from numba import cuda

    from fastdnn.device_parallel import GradientReduction

    rng = np.random.default_rng(0)
    small = sizes["staging"][0]
    mine, other = rng.random(small + 1, dtype=np.float32), rng.random(small + 1, dtype=np.float32)
    reduction = cuda.to_device(mine)
    loss = GradientReduction(_StandInRank(other), reduction, direct=False).step(0.5, 3, 4)
    ok = bool(np.array_equal(reduction.copy_to_host()[:-1], mine[:-1] + other[:-1]) and loss == np.float32(0.375) + other[-1])
    rows = []
    for n in sizes["staging"]:
        reduction = cuda.to_device(np.zeros(n + 1, dtype=np.float32))
        staged = GradientReduction(_StandInRank(), reduction, direct=False)
        pageable = np.empty(n + 1, dtype=np.float32)

        def through_pageable():
            reduction.copy_to_host(pageable)
            reduction.copy_to_device(pageable)

        seconds = _median_time(lambda: staged.step(0.5, 3, 4), cuda.synchronize, max(3, sizes["repeats"]), warmup=2)
        plain = _median_time(through_pageable, cuda.synchronize, max(3, sizes["repeats"]), warmup=2)
        bytes_moved = 2 * 4 * (n + 1)  # to the host and back
        rows.append({"parameters": n, "staged ms": seconds * 1e3, "staged GB/s": bytes_moved / seconds / 1e9,
                     "pageable ms": plain * 1e3, "pageable GB/s": bytes_moved / plain / 1e9})
        print(f"  {n:>11,} parameters: staged step {seconds * 1e3:8.3f} ms ({bytes_moved / seconds / 1e9:6.1f} GB/s), "
              f"through pageable memory {plain * 1e3:8.3f} ms ({bytes_moved / plain / 1e9:6.1f} GB/s)")
    RESULTS["staging"] = {"sum correct": ok, "rows": rows}
    print(f"  a stand-in second rank's gradients summed into the device buffer: {'ok' if ok else 'WRONG'}")
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (the simulator, or a smoke test)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="sections to run")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    reason = backend.cuda_unavailable_reason()
    if reason is not None:
        print(f"gpu_check: CUDA is unavailable: {reason}", file=sys.stderr)
        return 2
    if backend.simulating():
        config.CUDA_BLOCK, config.CUDA_TILE, config.CUDA_GEMM_REG = 8, 4, 2  # the simulator runs each thread as a Python thread
    sizes = _sizes(args.tiny or backend.simulating())
    RESULTS["environment"] = environment()
    print("fastdnn gpu_check: " + ", ".join(f"{k} {v}" for k, v in RESULTS["environment"].items()), flush=True)
    checks = {"kernels": check_kernels, "accuracy": check_accuracy, "staging": check_staging}
    timings = {"optim": time_optim, "gemm": time_gemm, "step": time_step, "epochs": time_epochs}
    passed = True
    for name in SECTIONS:
        if name not in args.only:
            continue
        print(f"\n[{name}]", flush=True)
        start = time.perf_counter()
        try:
            result = (checks.get(name) or timings[name])(sizes)
            if name in checks:
                passed = passed and bool(result)
        except Exception:
            traceback.print_exc()
            RESULTS.setdefault("errors", {})[name] = traceback.format_exc()
            passed = passed and name not in checks
        RESULTS.setdefault("seconds", {})[name] = time.perf_counter() - start
        print(f"[{name}] {time.perf_counter() - start:.1f} s", flush=True)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(RESULTS, handle, indent=1, default=str)
    failed = [name for name in RESULTS.get("errors", {})]
    print(f"\ncorrectness checks passed: {passed}" + (f"; sections that raised: {', '.join(failed)}" if failed else ""))
    return 0 if passed and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
