"""Update-rule checks: each optimizer's fused kernel against ``fastdnn.verify.reference`` over many steps.

Both ways fastdnn runs an optimizer are checked, from the same random state: the model's path
(``optimizer.step`` over one flat buffer with per-variable offsets) and ``optimizer.apply`` on a list
of arrays. States start random (not zero), so that terms that vanish at the start (momentum, bias
correction, an epsilon beside a tiny second moment) are exercised.
"""

import numpy as np

import fastdnn as fd
from fastdnn.verify import reference
from fastdnn.verify.gradcheck import compare

STEPS = 30
SHAPES = [(4, 5), (7,), (2, 3, 2)]  # the variables: a matrix, a vector, a higher-rank array
RTOL = 1e-11
ATOL = 1e-14
NOTE = f"{STEPS} steps from a random state, gradient scales from 1e-3 to 1"


def random_state(name, size, rng):
    """A valid random value for state buffer ``name``: second moments positive, centred ones consistent."""
    if name == "momentum":
        return rng.normal(0.0, 0.05, size)
    if name == "accumulator":
        return rng.uniform(1e-3, 1.0, size)
    if name in ("velocity", "accumulated_grad"):
        return rng.uniform(1e-8, 1e-3, size)
    if name == "accumulated_delta_var":
        return rng.uniform(1e-10, 1e-5, size)
    raise KeyError(name)


def initial_state(optimizer, size, rng):
    """Random buffers for every state ``optimizer`` uses, as ``get_state`` would return them."""
    buffers = {}
    for name in optimizer.active_state():
        if name == "average_gradient":
            continue
        if name == "velocity_hat":
            continue
        buffers[name] = random_state(name, size, rng)
    if "average_gradient" in optimizer.active_state():
        buffers["average_gradient"] = np.sqrt(buffers["velocity"]) * rng.uniform(-0.5, 0.5, size)
    if "velocity_hat" in optimizer.active_state():
        buffers["velocity_hat"] = buffers["velocity"] * rng.uniform(1.0, 2.0, size)
    return {"iterations": int(rng.integers(0, 50)), "buffers": buffers}


def _split(flat, offsets, shapes):
    return [flat[a:b].reshape(shape) for a, b, shape in zip(offsets[:-1], offsets[1:], shapes)]


def _reference(case, params, grads_per_step, state, offsets):
    """Reference run from ``state`` split per variable."""
    states = []
    for k, shape in enumerate(SHAPES):
        entry = {name: values[offsets[k] : offsets[k + 1]].reshape(shape) for name, values in state["buffers"].items()}
        entry["t"] = state["iterations"]
        states.append(entry)
    return reference.optimizer_steps(case.rule, params, grads_per_step, states, **dict(case.hyper))


def check_update_rule(case, rng, steps=STEPS, make_optimizer=None):
    """Rows for ``params`` and ``state`` through the flat path and through ``apply``.

    ``make_optimizer`` (default: the registered constructor) lets the self-test check planted bugs.
    """
    from fastdnn.verify.cases import _optimizer_factory

    make_optimizer = make_optimizer or (lambda: _optimizer_factory(case.registered_name, case.hyper))
    sizes = [int(np.prod(shape)) for shape in SHAPES]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    params0 = [rng.normal(size=shape) for shape in SHAPES]
    # gradient scales vary per step, so second moments move over several orders of magnitude
    grads_per_step = [[rng.normal(size=shape) * 10.0 ** rng.uniform(-3, 0) for shape in SHAPES] for _ in range(steps)]
    probe = make_optimizer()
    probe.build(int(offsets[-1]), np.float64)
    state = initial_state(probe, int(offsets[-1]), rng)
    expected_params, expected_states = _reference(case, params0, grads_per_step, state, offsets)
    expected_flat = np.concatenate([p.reshape(-1) for p in expected_params])

    results = []
    # the model's path: one flat buffer, per-variable offsets
    optimizer = make_optimizer()
    flat = np.concatenate([p.reshape(-1) for p in params0])
    optimizer.build(flat.size, np.float64)
    optimizer.set_state(state)
    for grads in grads_per_step:
        optimizer.step(flat, np.concatenate([g.reshape(-1) for g in grads]), offsets)
    results += _rows(case, "flat step", flat, expected_flat, optimizer, expected_states, offsets)

    # Optimizer.apply on a list of arrays
    optimizer = make_optimizer()
    params = [p.copy() for p in params0]
    optimizer.array_layout(params)
    optimizer.set_state(state)
    for grads in grads_per_step:
        optimizer.apply([g.copy() for g in grads], params)
    applied = np.concatenate([p.reshape(-1) for p in params])
    results += _rows(case, "apply", applied, expected_flat, optimizer, expected_states, offsets)
    return results


def _rows(case, path, actual, expected, optimizer, expected_states, offsets):
    def row(argument, wanted, got):
        return compare(case.op, argument, wanted, got, RTOL, ATOL, "steps", NOTE, sides=("reference", "kernel"))

    rows = [row(f"params ({path})", expected, actual)]
    for name, buffer in optimizer.state.items():
        rows.append(row(f"{name} ({path})", np.concatenate([s[name].reshape(-1) for s in expected_states]), buffer))
    return rows
