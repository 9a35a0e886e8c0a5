"""One script for a real GPU: correctness of every CUDA kernel, a short training run, and timings.

    pip install 'fastdnn[cuda]' torch        # torch (CUDA build) only for the side-by-side column
    pip install 'numba-cuda[cu12]'           # (or [cu13]) where no CUDA toolkit provides NVVM/NVRTC
    python benchmarks/gpu_check.py           # on a machine with an NVIDIA GPU
    python benchmarks/gpu_check.py --gemm cupy   # products through cuBLAS (needs CuPy)
    NUMBA_ENABLE_CUDASIM=1 python benchmarks/gpu_check.py --tiny   # the same script, simulated, tiny sizes

1. Every CUDA kernel against its CPU twin (``fastdnn.verify.agreement``, float64 and float32).
2. An MNIST-sized MLP (784-512-256-10, 60,000 synthetic samples, batch 128) trained a few epochs on
   the device: loss per epoch, seconds per epoch, and the loss against the same model on the CPU.
3. Timings beside PyTorch CUDA in the same run (skipped with a note when PyTorch has no CUDA):
   an Adam step over 100M float32 parameters; an MLP training step at batch 4096, hidden size 4096;
   the GEMM kernel alone (4096^3, float32) against cuBLAS.

Exit status 0 when every kernel agrees and training lowered the loss, 1 otherwise, 2 without CUDA.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fastdnn as fd  # noqa: E402
from fastdnn import backend, config  # noqa: E402


def _sizes(tiny):
    if tiny:
        return {"shapes": (5, 7, 6), "n": 128, "features": 16, "hidden": (8, 8), "classes": 4, "batch": 64, "epochs": 2,
                "adam": 4096, "mlp_batch": 16, "mlp_hidden": 8, "mlp_in": 8, "gemm": 8, "repeats": 1}
    return {"shapes": (67, 45, 131), "n": 60000, "features": 784, "hidden": (512, 256), "classes": 10, "batch": 128, "epochs": 3,
            "adam": 100_000_000, "mlp_batch": 4096, "mlp_hidden": 4096, "mlp_in": 784, "gemm": 4096, "repeats": 20}


def _timed(function, synchronize, repeats):
    function()  # warm-up (compiles)
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    synchronize()
    return (time.perf_counter() - start) / repeats


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, "PyTorch has no CUDA device"
    return torch, None


def check_kernels(sizes):
    from fastdnn.verify import agreement

    results, seconds = agreement.run(shapes=sizes["shapes"])
    failed = [r for r in results if not r.passed]
    print(agreement.table(failed) if failed else "")
    print(agreement.summary(results, seconds))
    return not failed


def train_mlp(sizes):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(sizes["classes"], sizes["features"])).astype(np.float32)
    y = rng.integers(0, sizes["classes"], size=sizes["n"])
    x = (centers[y] + rng.normal(scale=2.0, size=(sizes["n"], sizes["features"]))).astype(np.float32)

    def model(device):
        fd.set_seed(0)
        layers = [fd.layers.Dense(sizes["hidden"][0], activation="relu", input_shape=(sizes["features"],))]
        layers += [fd.layers.Dense(h, activation="relu") for h in sizes["hidden"][1:]]
        layers.append(fd.layers.Dense(sizes["classes"], activation="softmax"))
        m = fd.Sequential(layers)
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], device=device)
        return m

    gpu = model("cuda")
    gpu.fit(x[: sizes["batch"]], y[: sizes["batch"]], batch_size=sizes["batch"], epochs=1, verbose=0)  # compile kernels
    gpu = model("cuda")
    print(f"\nMLP {sizes['features']}-{'-'.join(map(str, sizes['hidden']))}-{sizes['classes']}, {sizes['n']} samples, batch {sizes['batch']}, on {backend_name()}")
    losses = []
    for epoch in range(sizes["epochs"]):
        fd.set_seed(100 + epoch)
        start = time.perf_counter()
        logs = gpu.fit(x, y, batch_size=sizes["batch"], epochs=1, verbose=0).history
        seconds = time.perf_counter() - start
        losses.append(logs["loss"][0])
        print(f"  epoch {epoch + 1}: loss {logs['loss'][0]:.4f}  accuracy {logs['accuracy'][0]:.4f}  {seconds:.2f} s")
    cpu = model("cpu")
    fd.set_seed(100)
    cpu_loss = cpu.fit(x, y, batch_size=sizes["batch"], epochs=1, verbose=0).history["loss"][0]
    print(f"  first-epoch loss: CPU {cpu_loss:.5f}, GPU {losses[0]:.5f} (same seed; float32, so close, not identical)")
    return losses[-1] < losses[0] and abs(cpu_loss - losses[0]) <= 0.02 * abs(cpu_loss) + 1e-3


def backend_name():
    from numba import cuda

    if backend.simulating():
        return "the CUDA simulator"
    return cuda.get_current_device().name.decode() if isinstance(cuda.get_current_device().name, bytes) else str(cuda.get_current_device().name)


def timings(sizes):
    from numba import cuda

    from fastdnn.kernels.cuda import dense, optim

    torch, why = _torch_cuda()
    rows = []
    sync = cuda.synchronize
    repeats = sizes["repeats"]

    # Adam over one flat buffer
    n = sizes["adam"]
    buffers = [cuda.to_device(np.full(n, value, np.float32)) for value in (0.5, 0.01, 0.0, 0.0)]
    p, g, m, v = buffers
    empty = cuda.device_array(0, np.float32)
    f32 = np.float32
    ours = _timed(lambda: optim.adam_step(p, g, m, v, empty, f32(1e-3), f32(0.9), f32(0.999), f32(1e-7), False), sync, repeats)
    theirs = None
    if torch is not None:
        tp = torch.full((n,), 0.5, device="cuda", requires_grad=True)
        tp.grad = torch.full((n,), 0.01, device="cuda")
        adam = torch.optim.Adam([tp], lr=1e-3, fused=True)
        theirs = _timed(adam.step, torch.cuda.synchronize, repeats)
    rows.append((f"Adam step, {n:,} float32 params", ours, theirs, 4 * 7 * n / ours / 1e9, "GB/s"))
    del buffers, p, g, m, v

    # MLP training step
    batch, hidden, n_in = sizes["mlp_batch"], sizes["mlp_hidden"], sizes["mlp_in"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, n_in)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    fd.set_seed(0)
    model = fd.Sequential([fd.layers.Dense(hidden, activation="relu", input_shape=(n_in,)), fd.layers.Dense(hidden, activation="relu"), fd.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", device="cuda")
    engine = backend.engine_for(model)
    engine.push_params()
    xb, tb = cuda.to_device(x), cuda.to_device(y.astype(np.int64))
    engine._attach_optimizer()
    try:
        ours = _timed(lambda: engine.train_step(xb, tb), sync, repeats)
    finally:
        engine._detach_optimizer()
    theirs = None
    if torch is not None:
        net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)).cuda()
        opt = torch.optim.Adam(net.parameters(), fused=True)
        tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
        loss_fn = torch.nn.CrossEntropyLoss()

        def torch_step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(tx), ty)
            loss.backward()
            opt.step()
            return loss.item()  # fastdnn's step also brings the loss back

        theirs = _timed(torch_step, torch.cuda.synchronize, repeats)
    flops = 6 * batch * (n_in * hidden + hidden * hidden + hidden * 10)
    rows.append((f"MLP train step, batch {batch}, hidden {hidden} (GEMM={config.GEMM})", ours, theirs, flops / ours / 1e12, "TFLOP/s"))

    # GEMM alone
    size = sizes["gemm"]
    a = cuda.to_device(rng.normal(size=(size, size)).astype(np.float32))
    b = cuda.to_device(rng.normal(size=(size, size)).astype(np.float32))
    c = cuda.device_array((size, size), np.float32)
    saved = config.GEMM
    config.GEMM = "numba"
    try:
        ours = _timed(lambda: dense.gemm(a, b, c), sync, repeats)
    finally:
        config.GEMM = saved
    theirs = None
    if torch is not None:
        ta, tb2 = torch.randn(size, size, device="cuda"), torch.randn(size, size, device="cuda")
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 against float32
        theirs = _timed(lambda: ta @ tb2, torch.cuda.synchronize, repeats)
    rows.append((f"GEMM {size}^3 float32, numba (tile {config.CUDA_TILE}, reg {config.CUDA_GEMM_REG}) vs cuBLAS", ours, theirs, 2 * size**3 / ours / 1e12, "TFLOP/s"))

    print(f"\nTimings on {backend_name()} (mean of {repeats} after a warm-up)" + (f"; PyTorch column empty: {why}" if torch is None else ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'operation':{width}s}  {'fastdnn ms':>11s}  {'PyTorch ms':>11s}  {'ratio':>6s}  fastdnn rate")
    for name, ours, theirs, rate, unit in rows:
        other = f"{theirs * 1e3:11.3f}" if theirs is not None else f"{'-':>11s}"
        ratio = f"{ours / theirs:6.2f}" if theirs is not None else f"{'-':>6s}"
        print(f"{name:{width}s}  {ours * 1e3:11.3f}  {other}  {ratio}  {rate:.2f} {unit}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (for the simulator, or a smoke test)")
    parser.add_argument("--gemm", choices=("numba", "cupy"), default=config.GEMM, help="matrix products for training (default: config.GEMM)")
    parser.add_argument("--skip-timings", action="store_true", help="correctness and training only")
    args = parser.parse_args(argv)
    reason = backend.cuda_unavailable_reason()
    if reason is not None:
        print(f"gpu_check: CUDA is unavailable: {reason}", file=sys.stderr)
        return 2
    if backend.simulating():
        config.CUDA_BLOCK, config.CUDA_TILE, config.CUDA_GEMM_REG = 8, 4, 2  # the simulator runs each thread as a Python thread
    config.GEMM = args.gemm
    sizes = _sizes(args.tiny or backend.simulating())
    print(f"fastdnn gpu_check on {backend_name()}")
    agree = check_kernels(sizes)
    trained = train_mlp(sizes)
    if not args.skip_timings:
        timings(sizes)
    print(f"\nkernels agree: {agree}; training lowered the loss and matches the CPU: {trained}")
    return 0 if agree and trained else 1


if __name__ == "__main__":
    sys.exit(main())
