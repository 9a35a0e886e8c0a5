"""The finite-difference engine: analytical backward passes against central differences in float64.

Two modes, as in PyTorch's ``gradcheck`` (full Jacobian) and JAX's ``check_grads`` (random directions):

- ``full``: every element of the Jacobian. Column ``i`` numerically, ``(f(x + h e_i) - f(x - h e_i)) / 2h``;
  row ``k`` analytically, the backward pass of the unit vector ``e_k``. For small shapes.
- ``random``: for random directions ``u`` (input space) and ``v`` (output space), compare the numerical
  ``v . (f(x + h u) - f(x - h u)) / 2h`` with the analytical ``backward(v) . u``. Cheap on large layers.

An op is given as a `GradientCase`: named float64 arrays (inputs and parameters, read by reference by
``forward``), a ``forward()`` returning an array, and a ``backward(dLdY)`` returning the gradient of
``sum(dLdY * forward())`` with respect to each named array.
"""

from dataclasses import dataclass, field

import numpy as np

#: Central-difference step. Its error is about ``h^2 |f'''| / 6`` (truncation) plus ``eps |f| / h`` (rounding):
#: both near 1e-11 for values of order one in float64.
STEP = 1e-5
#: Default tolerance: ``|analytical - numerical| <= ATOL + RTOL |numerical|``, element by element.
RTOL = 1e-6
ATOL = 1e-9
#: Directions per argument in random mode.
DIRECTIONS = 8


@dataclass
class GradientCase:
    """One op, ready to check.

    Parameters
    ----------
    op : str
        Name in reports, e.g. ``"layer:Dense(tanh) (1x3->4)"``.
    arguments : dict of name -> float64 array
        Everything differentiated; ``forward`` must read these arrays (they are perturbed in place).
    forward : callable () -> array
    backward : callable (dLdY) -> dict of name -> array
        The analytical gradient of ``sum(dLdY * forward())`` for each argument.
    note : str
        How inputs were drawn, e.g. "inputs at least 0.01 away from the kink at 0".
    rtol, atol : float
        Tolerance for this case.
    covers : str
        The registry entry the case checks, ``"<registry>:<name>"``.
    """

    op: str
    arguments: dict
    forward: object
    backward: object
    note: str = ""
    rtol: float = RTOL
    atol: float = ATOL
    kind: str = "gradient"
    #: The registry entry this case covers ("activation:relu"), for the coverage test.
    covers: str = ""


@dataclass
class CheckResult:
    """The outcome of checking one argument of one op."""

    op: str
    argument: str
    max_abs_error: float
    max_rel_error: float
    rtol: float
    atol: float
    passed: bool
    mode: str
    worst_index: tuple = ()
    numerical: float = 0.0
    analytical: float = 0.0
    note: str = ""
    extra: dict = field(default_factory=dict)
    #: What the two compared sides are called in reports.
    sides: tuple = ("numerical", "analytical")

    @property
    def tolerance(self):
        return f"{self.rtol:.0e} rel + {self.atol:.0e} abs"

    def failure_report(self):
        """One paragraph naming the op, the argument, the worst element and both values."""
        what = "gradient with respect to" if self.sides[0] == "numerical" else "result for"
        return (
            f"{self.op}: {what} {self.argument!r} is wrong ({self.mode} mode). "
            f"Worst element {self.worst_index}: {self.sides[0]} {self.numerical:.10g}, {self.sides[1]} {self.analytical:.10g} "
            f"(abs error {self.max_abs_error:.3g}, rel error {self.max_rel_error:.3g}; tolerance {self.tolerance})."
            + (f" Inputs: {self.note}." if self.note else "")
        )

    def as_dict(self):
        return {
            "op": self.op,
            "argument": self.argument,
            "mode": self.mode,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "rtol": self.rtol,
            "atol": self.atol,
            "passed": self.passed,
            "worst_index": list(self.worst_index),
            "numerical": self.numerical,
            "analytical": self.analytical,
            "note": self.note,
            **self.extra,
        }


def compare(op, argument, numerical, analytical, rtol, atol, mode, note="", index_shape=None, sides=None):
    """Elementwise comparison of two arrays into a `CheckResult`: ``numerical`` is the trusted side."""
    numerical = np.asarray(numerical, dtype=np.float64)
    analytical = np.asarray(analytical, dtype=np.float64)
    if numerical.shape != analytical.shape:
        return CheckResult(
            op, argument, np.inf, np.inf, rtol, atol, False, mode, note=note,
            extra={"error": f"shape {analytical.shape} received, {numerical.shape} expected"},
        )
    difference = np.abs(analytical - numerical)
    if not np.all(np.isfinite(analytical)):
        difference = np.where(np.isfinite(analytical), difference, np.inf)
    excess = difference - (atol + rtol * np.abs(numerical))
    flat_worst = int(np.argmax(excess)) if excess.size else 0
    worst = np.unravel_index(flat_worst, index_shape or numerical.shape) if numerical.size else ()
    scale = np.maximum(np.maximum(np.abs(numerical), np.abs(analytical)), atol / rtol)
    return CheckResult(
        op=op,
        argument=argument,
        max_abs_error=float(difference.max()) if difference.size else 0.0,
        max_rel_error=float((difference / scale).max()) if difference.size else 0.0,
        rtol=rtol,
        atol=atol,
        passed=bool(np.all(excess <= 0)),
        mode=mode,
        worst_index=tuple(int(i) for i in worst),
        numerical=float(numerical.reshape(-1)[flat_worst]) if numerical.size else 0.0,
        analytical=float(analytical.reshape(-1)[flat_worst]) if analytical.size else 0.0,
        note=note,
        sides=sides or ("numerical", "analytical"),
    )


def numerical_gradient(f, x, step=STEP):
    """``df/dx`` of a scalar function ``f()`` that reads float64 array ``x`` by reference.

    ``x`` is perturbed in place one element at a time and restored.
    """
    if x.dtype != np.float64:
        raise TypeError(f"x: expected float64 for finite differences, received {x.dtype}")
    grad = np.empty_like(x)
    flat = x.reshape(-1)
    out = grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + step
        upper = float(f())
        flat[i] = original - step
        lower = float(f())
        flat[i] = original
        out[i] = (upper - lower) / (2.0 * step)
    return grad


def numerical_jacobian(forward, x, step=STEP):
    """``J[k, i] = d forward()_k / d x_i`` by central differences (``x`` perturbed in place)."""
    flat = x.reshape(-1)
    columns = []
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + step
        upper = np.array(forward(), dtype=np.float64).reshape(-1)
        flat[i] = original - step
        lower = np.array(forward(), dtype=np.float64).reshape(-1)
        flat[i] = original
        columns.append((upper - lower) / (2.0 * step))
    return np.stack(columns, axis=1)


def analytical_jacobian(case, name, output_shape):
    """Rows of the Jacobian of ``forward`` for argument ``name``, one backward pass per output element."""
    size = int(np.prod(output_shape))
    rows = []
    for k in range(size):
        unit = np.zeros(size)
        unit[k] = 1.0
        case.forward()  # the backward pass reads what this forward pass cached
        rows.append(np.array(case.backward(unit.reshape(output_shape))[name], dtype=np.float64).reshape(-1))
    return np.stack(rows, axis=0)


def check_full(case, step=STEP):
    """Every Jacobian element of every argument of ``case``."""
    output_shape = np.shape(case.forward())
    results = []
    for name, array in case.arguments.items():
        numerical = numerical_jacobian(case.forward, array, step)
        analytical = analytical_jacobian(case, name, output_shape)
        index_shape = (int(np.prod(output_shape)), array.size)
        results.append(compare(case.op, name, numerical, analytical, case.rtol, case.atol, "full", case.note, index_shape))
    return results


def check_random(case, rng, directions=DIRECTIONS, step=STEP):
    """``v . J u`` from finite differences against ``backward(v) . u`` for random unit directions."""
    output = np.array(case.forward(), dtype=np.float64)
    results = []
    for name, array in case.arguments.items():
        numerical, analytical = [], []
        for _ in range(directions):
            u = rng.standard_normal(array.shape)
            u /= np.linalg.norm(u)
            v = rng.standard_normal(output.shape)
            original = array.copy()
            array += step * u
            upper = np.array(case.forward(), dtype=np.float64)
            array[...] = original - step * u
            lower = np.array(case.forward(), dtype=np.float64)
            array[...] = original
            numerical.append(float(np.sum(v * (upper - lower)) / (2.0 * step)))
            case.forward()
            analytical.append(float(np.sum(np.asarray(case.backward(v)[name], dtype=np.float64) * u)))
        results.append(compare(case.op, name, numerical, analytical, case.rtol, case.atol, "random", case.note))
    return results


def check(case, mode="full", rng=None):
    """Check every argument of ``case`` (``mode``: ``"full"`` or ``"random"``); a list of `CheckResult`."""
    if mode == "full":
        return check_full(case)
    if mode == "random":
        return check_random(case, rng if rng is not None else np.random.default_rng(0))
    raise ValueError(f"mode: expected 'full' or 'random', received {mode!r}")


def relative_error(numerical, analytical, floor=1e-8):
    """Largest ``|a - n| / max(|a|, |n|, floor)`` over the elements."""
    numerical = np.asarray(numerical, dtype=np.float64)
    analytical = np.asarray(analytical, dtype=np.float64)
    scale = np.maximum(np.maximum(np.abs(numerical), np.abs(analytical)), floor)
    return float(np.max(np.abs(numerical - analytical) / scale))
