"""CPU-vs-GPU agreement: every numba.cuda kernel against its CPU twin on the same inputs.

Each check runs the CPU kernel on host copies and the CUDA launcher on device copies of the same
random inputs (float64 and float32), then compares every output array and returned value. The GEMM,
which has no CPU twin, is compared with ``np.dot``. Tolerances: float64 ``|a - b| <= 1e-9 + 1e-9 |b|``;
float32 ``|a - b| <= 1e-5 + 1e-4 |b|`` (the GPU sums in a different order, and its float32 maths
library differs from LLVM's in the last bits).

Run it with ``fastdnn-gradcheck --device cuda`` (a real GPU, or ``NUMBA_ENABLE_CUDASIM=1`` for the
simulator, at small shapes).
"""

import dataclasses
import itertools
import time

import numpy as np

TOLERANCES = {"float64": (1e-9, 1e-9), "float32": (1e-5, 1e-4)}  # (absolute, relative)


@dataclasses.dataclass
class Agreement:
    kernel: str
    dtype: str
    max_abs_error: float
    max_rel_error: float
    passed: bool
    error: str = ""

    @property
    def tolerance(self):
        atol, rtol = TOLERANCES[self.dtype]
        return f"{atol:g}+{rtol:g}|x|"


def _errors(gpu, cpu, dtype):
    gpu = np.asarray(gpu, dtype=np.float64)
    cpu = np.asarray(cpu, dtype=np.float64)
    if gpu.shape != cpu.shape:
        return np.inf, np.inf, False
    if gpu.size == 0:
        return 0.0, 0.0, True
    same_nonfinite = np.array_equal(np.isfinite(gpu), np.isfinite(cpu))
    finite = np.isfinite(cpu)
    diff = np.abs(gpu[finite] - cpu[finite])
    atol, rtol = TOLERANCES[dtype]
    ok = same_nonfinite and bool(np.all(diff <= atol + rtol * np.abs(cpu[finite])))
    abs_err = float(diff.max()) if diff.size else 0.0
    rel_err = float((diff / np.maximum(np.abs(cpu[finite]), 1e-30)).max()) if diff.size else 0.0
    return abs_err, rel_err, ok


def _compare(name, dtype, cpu_fn, gpu_fn, args, outputs, cuda, compare_return=True):
    host = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    device = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    try:
        expected = cpu_fn(*host)
        received = gpu_fn(*device)
    except Exception as error:  # a launch failure is a failed check, not a crash of the whole run
        return Agreement(name, dtype, np.inf, np.inf, False, f"{type(error).__name__}: {error}")
    worst_abs = worst_rel = 0.0
    passed = True
    pairs = [(device[i].copy_to_host(), host[i]) for i in outputs]
    if compare_return and expected is not None:
        pairs.append((np.asarray(float(received)), np.asarray(float(expected))))
    for gpu, cpu in pairs:
        a, r, ok = _errors(gpu, cpu, dtype)
        worst_abs, worst_rel, passed = max(worst_abs, a), max(worst_rel, r), passed and ok
    return Agreement(name, dtype, worst_abs, worst_rel, passed)


def _cases(rng, dtype, n, d, k):
    """Yield ``(name, family, function, args, output positions)`` for every CUDA kernel."""
    from fastdnn.kernels.cpu import activation as act

    def arr(*shape, low=-2.0, high=2.0):
        return rng.uniform(low, high, size=shape).astype(dtype)

    scalar = np.dtype(dtype).type
    alpha = scalar(0.2)
    codes = {name: getattr(act, name) for name in ("LINEAR", "SIGMOID", "TANH", "RELU", "LEAKY_RELU", "ELU", "SOFTPLUS", "GELU", "SILU", "SOFTMAX")}
    for label, code in codes.items():
        z = arr(n, d)
        y = np.empty_like(z)
        act.activation_forward(code, z, alpha, y)
        yield f"activation_forward[{label.lower()}]", "activation", "activation_forward", [code, z, alpha, np.zeros_like(z)], [3]
        yield f"activation_backward[{label.lower()}]", "activation", "activation_backward", [code, z, y, arr(n, d), alpha, np.zeros_like(z)], [5]
        yield f"bias_activation[{label.lower()}]", "dense", "bias_activation", [arr(n, d), arr(d), code, alpha, np.zeros((n, d), dtype)], [0, 4]
    empty = np.empty(0, dtype)
    for label, code in (("relu", act.RELU), ("softmax", act.SOFTMAX), ("linear", act.LINEAR)):
        for bias in (arr(d), empty):
            tag = f"{label}{'' if bias.size else ',no bias'}"
            yield f"dense_forward[{tag}]", "dense", "dense_forward", [arr(n, k), arr(k, d), bias, code, alpha, np.zeros((n, d), dtype), np.zeros((n, d), dtype)], [5, 6]
            x, W = arr(n, k), arr(k, d)
            z = x @ W + (bias if bias.size else 0)
            y = np.empty_like(z)
            act.activation_forward(code, z, alpha, y)
            db = np.zeros(d, dtype) if bias.size else empty
            yield (f"dense_backward[{tag}]", "dense", "dense_backward",
                   [x, W, z, y, arr(n, d), code, alpha, np.zeros((n, d), dtype), np.zeros((k, d), dtype), db, np.zeros((n, k), dtype), True],
                   [7, 8, 9, 10])
    yield "column_sums", "dense", "column_sums", [arr(n, d), np.zeros(d, dtype)], [1]
    # losses: predictions in (0, 1) for the probability forms, a few of them clipped
    probs = rng.uniform(0.01, 1.0, size=(n, d)).astype(dtype)
    probs[0, 0] = 0.0
    softmaxed = (probs / probs.sum(axis=1, keepdims=True)).astype(dtype)
    targets = rng.uniform(0.0, 1.0, size=(n, d)).astype(dtype)
    onehot = np.eye(d, dtype=dtype)[rng.integers(0, d, size=n)]
    labels = rng.integers(0, d, size=n).astype(np.int64)
    grad = np.zeros((n, d), dtype)
    for name, p, t in (
        ("mean_squared_error", arr(n, d), arr(n, d)),
        ("mean_absolute_error", arr(n, d), arr(n, d)),
        ("binary_crossentropy", probs, targets),
        ("binary_crossentropy_from_logits", arr(n, d), targets),
        ("categorical_crossentropy", softmaxed, onehot),
        ("categorical_crossentropy_from_logits", arr(n, d), onehot),
        ("sparse_categorical_crossentropy", softmaxed, labels),
        ("sparse_categorical_crossentropy_from_logits", arr(n, d), labels),
    ):
        yield name, "loss", name, [p, t, grad.copy(), True], [2]
    # optimizers over a flat buffer of m parameters
    m = n * d + k
    p, g = arr(m), arr(m)

    def pos(low=0.0):
        return rng.uniform(low, 1.0, size=m).astype(dtype)

    s = scalar
    yield "sgd_step", "optim", "sgd_step", [p, g, s(0.1)], [0]
    for nesterov in (False, True):
        yield f"momentum_step[nesterov={nesterov}]", "optim", "momentum_step", [p, g, arr(m), s(0.1), s(0.9), nesterov], [0, 2]
    yield "adagrad_step", "optim", "adagrad_step", [p, g, pos(0.1), s(0.01), s(1e-7)], [0, 2]
    for centered in (False, True):
        for momentum in (0.0, 0.9):
            vel = pos(0.5)  # centered: vel >= avg^2 keeps the square root real
            yield (f"rmsprop_step[centered={centered},momentum={momentum}]", "optim", "rmsprop_step",
                   [p, g, vel, arr(m), pos() * 0.1, s(0.01), s(0.9), s(momentum), s(1e-7), centered], [0, 2, 3, 4])
    yield "adadelta_step", "optim", "adadelta_step", [p, g, pos(), pos(), s(1.0), s(0.95), s(1e-7)], [0, 2, 3]
    for amsgrad in (False, True):
        yield (f"adam_step[amsgrad={amsgrad}]", "optim", "adam_step",
               [p, g, arr(m), pos(), pos() if amsgrad else np.empty(0, dtype), s(0.01), s(0.9), s(0.999), s(1e-7), amsgrad], [0, 2, 3, 4])
    yield "decay_weights", "optim", "decay_weights", [p, s(0.01)], [0]
    yield "clip_by_value", "optim", "clip_by_value", [g, s(0.5)], [0]
    offsets = np.array([0, 3, n * d, m], dtype=np.int64)
    yield "clip_segments_by_norm", "optim", "clip_segments_by_norm", [arr(m) * 3, offsets, 0.7], [0]
    # data movement
    index = rng.integers(0, n, size=n + 2).astype(np.int64)
    yield "take_rows", "data", "take_rows", [arr(n, d), index, np.zeros((n + 2, d), dtype)], [2]
    yield "take", "data", "take", [labels, index, np.zeros(n + 2, np.int64)], [2]
    finite = arr(m)
    yield "all_finite[finite]", "data", "all_finite", [finite], []
    broken = finite.copy()
    broken[m // 2] = np.nan
    yield "all_finite[nan]", "data", "all_finite", [broken], []


def _family_cases(rng, dtype, n, d, k):
    """The cases of the ``fastdnn/verify/agreement_<family>.py`` modules (layer kernels beyond the core
    families), each a ``cases(rng, dtype, n, d, k)`` generator in the format of `_cases`."""
    import importlib
    import pkgutil

    import fastdnn.verify as verify

    for module in sorted(m.name for m in pkgutil.iter_modules(verify.__path__) if m.name.startswith("agreement_")):
        yield from importlib.import_module(f"{verify.__name__}.{module}").cases(rng, dtype, n, d, k)


def _gemm_cases(rng, dtype, n, d, k):
    for trans_a in (False, True):
        for trans_b in (False, True):
            a = rng.uniform(-1, 1, size=(k, n) if trans_a else (n, k)).astype(dtype)
            b = rng.uniform(-1, 1, size=(d, k) if trans_b else (k, d)).astype(dtype)
            yield f"gemm[trans_a={trans_a},trans_b={trans_b}]", a, b, trans_a, trans_b


def run(shapes=(5, 7, 6), dtypes=("float64", "float32"), seed=0, only=None):
    """Every agreement check; returns ``(results, seconds)``. ``shapes`` = (rows, width, inner size)."""
    from numba import cuda

    from fastdnn import backend

    cpu = backend.kernels("cpu")
    gpu = backend.kernels("cuda")
    start = time.perf_counter()
    results = []
    n, d, k = shapes
    for dtype in dtypes:
        rng = np.random.default_rng(seed)
        for name, family, function, args, outputs in itertools.chain(_cases(rng, dtype, n, d, k), _family_cases(rng, dtype, n, d, k)):
            if only and only not in name:
                continue
            cpu_fn = getattr(getattr(cpu, family), function)
            gpu_fn = getattr(getattr(gpu, family), function)
            results.append(_compare(name, dtype, cpu_fn, gpu_fn, args, outputs, cuda))
        for name, a, b, trans_a, trans_b in _gemm_cases(rng, dtype, n, d, k):
            if only and only not in name:
                continue
            out = np.zeros((n, d), dtype)

            def reference(a, b, c, ta, tb):
                c[...] = (a.T if ta else a) @ (b.T if tb else b)

            results.append(_compare(name, dtype, reference, gpu.dense.gemm, [a, b, out, trans_a, trans_b], [2], cuda))
    return results, time.perf_counter() - start


def table(results):
    headers = ("kernel", "dtype", "max abs err", "max rel err", "tolerance", "status")
    rows = [(r.kernel, r.dtype, f"{r.max_abs_error:.2e}", f"{r.max_rel_error:.2e}", r.tolerance, "ok" if r.passed else f"FAILED {r.error}".strip()) for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def summary(results, seconds):
    failed = [r for r in results if not r.passed]
    verdict = "all agree" if not failed else f"{len(failed)} DISAGREE"
    return f"CPU vs CUDA: {len(results)} kernel checks: {verdict} ({seconds:.1f} s)"


def gradient_run(seed=0, only=None, mode=None):
    """The end-to-end model gradient cases of ``fastdnn.verify.cases.model_cases`` and ``layer_model_cases``
    (every layer family), compiled for ``device="cuda"``: the loss gradient computed by the CUDA
    kernels against float64 central differences.

    ``mode`` overrides each case's preferred mode (``"random"`` is far cheaper in the simulator).
    Returns ``(results, seconds)`` in the format of ``fastdnn.verify.run`` (``fastdnn.verify.report`` prints them).
    """
    from fastdnn.verify.cases import layer_model_cases, model_cases
    from fastdnn.verify.gradcheck import check

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    results = []
    for case, preferred in itertools.chain(model_cases(rng, device="cuda"), layer_model_cases(rng, device="cuda")):
        if only and only not in case.op:
            continue
        results.extend(check(case, mode or preferred, rng))
    return results, time.perf_counter() - start
