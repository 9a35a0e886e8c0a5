"""Run the checks: every gradient case, every layer configuration of the argument-space grids
(`fastdnn.verify.spaces`) and every update rule, filtered, in a chosen mode, in this process or
spread over several.

Each case draws from a random stream of its own, seeded by the seed and the case's name (and so
does fastdnn's own generator, which initializes the weights of the models a case builds): a case
sees the same inputs whatever else runs, so ``--only`` reproduces what the full run checked, and
the cases can run in any order or process. On a machine without numba's cache (a first run), most
of the time goes into compiling the kernels the cases reach; ``jobs`` processes compile different
families side by side (each takes contiguous runs of the case list, whose neighbours share
kernels), and the cache they fill serves every later run.
"""

import concurrent.futures
import fnmatch
import multiprocessing
import time
import zlib

import numpy as np

from fastdnn.verify import cases, spaces, update_rules
from fastdnn.verify.gradcheck import CheckResult, check


def matches(op, pattern):
    """Substring match, or with wildcards (``* ? []``) a glob against the op name with or without its
    family prefix: ``adam*`` and ``optimizer:adam*`` both select the Adam cases. Case-insensitive,
    as pytest's ``-k`` is: ``dense`` selects ``layer:Dense(...)``.
    """
    if pattern is None:
        return True
    op, pattern = op.lower(), pattern.lower()
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(op, pattern) or fnmatch.fnmatchcase(op.partition(":")[2], pattern)
    return pattern in op


def selected(only=None, seed=0):
    """``[(case, preferred mode)]`` for every gradient, layer-configuration and update-rule case whose op
    matches ``only``. Every case is built (from fastdnn's generator, seeded with ``seed`` first), so
    that a case is the same whatever ``only`` leaves out."""
    from fastdnn import set_seed

    set_seed(seed)
    chosen = [(case, mode) for case, mode in cases.gradient_cases(seed) if matches(case.op, only)]
    chosen += [(case, "full") for case in spaces.config_cases(seed) if matches(case.op, only)]
    chosen += [(case, "steps") for case in cases.update_rule_cases() if matches(case.op, only)]
    return chosen


def run_case(case, mode, rng):
    """Results of one case; an exception in the code under test is a failed row, not a crash."""
    try:
        if case.kind == "update_rule":
            return update_rules.check_update_rule(case, rng)
        if case.kind == "layer_config":
            return case.run(mode, rng)
        return check(case, mode, rng)
    except Exception as error:  # the op itself failed: that is a finding, report it
        return [CheckResult(case.op, "(all)", np.inf, np.inf, 0.0, 0.0, False, mode, extra={"error": f"{type(error).__name__}: {error}"})]


def case_rng(case, seed):
    """The random stream of ``case``, from the seed and the case's name alone; fastdnn's own seed
    (the weights of the models a case builds) is set from them too."""
    from fastdnn import set_seed

    sequence = np.random.SeedSequence([seed, zlib.crc32(case.op.encode())])
    set_seed(int(sequence.generate_state(1)[0]))
    return np.random.default_rng(sequence)


def _run_cases(chosen_cases, mode, seed):
    results = []
    for case, preferred in chosen_cases:
        chosen = preferred if (mode is None or case.kind == "update_rule") else mode
        results.extend(run_case(case, chosen, case_rng(case, seed)))
    return results


def _run_range(only, mode, seed, first, last):
    """Results of the selected cases ``first .. last - 1``, in order (in a worker process)."""
    return _run_cases(selected(only, seed)[first:last], mode, seed)


def _one_thread():
    """A worker process's start: one thread (the cases are small, and the workers fill the cores)."""
    import fastdnn

    fastdnn.set_num_threads(1)


#: Fewest cases per worker process when ``jobs`` is left to `run`: starting a process and importing
#: fastdnn there (about a second) pays only when each has many kernels to compile.
CASES_PER_JOB = 100


def run(only=None, mode=None, seed=0, jobs=1):
    """Run the selected cases; ``mode`` overrides each gradient case's preferred mode.

    ``jobs`` above 1 spreads them over that many worker processes (started fresh, not forked),
    each taking the next of ``2 jobs`` contiguous runs of the case list when it is free; the
    results are the same, in the same order. ``jobs=None``: one per core, but no more than one
    per `CASES_PER_JOB` cases. Returns ``(results, seconds)``.
    """
    start = time.perf_counter()
    chosen_cases = selected(only, seed)
    count = len(chosen_cases)
    if jobs is None:
        from fastdnn.threads import available_cores

        jobs = min(available_cores(), count // CASES_PER_JOB)
    jobs = max(1, min(jobs, count))
    if jobs == 1:
        return _run_cases(chosen_cases, mode, seed), time.perf_counter() - start
    chunks = min(count, 2 * jobs)
    bounds = [count * k // chunks for k in range(chunks + 1)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread) as pool:
        parts = [pool.submit(_run_range, only, mode, seed, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
        results = [result for part in parts for result in part.result()]
    return results, time.perf_counter() - start
