"""Run the checks: every gradient case, every layer configuration of the argument-space grids
(`fastdnn.verify.spaces`) and every update rule, filtered, in a chosen mode."""

import fnmatch
import time

import numpy as np

from fastdnn.verify import cases, spaces, update_rules
from fastdnn.verify.gradcheck import CheckResult, check


def matches(op, pattern):
    """Substring match, or with wildcards (``* ? []``) a glob against the op name with or without its
    family prefix: ``adam*`` and ``optimizer:adam*`` both select the Adam cases.
    """
    if pattern is None:
        return True
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(op, pattern) or fnmatch.fnmatchcase(op.partition(":")[2], pattern)
    return pattern in op


def selected(only=None, seed=0):
    """``[(case, preferred mode)]`` for every gradient, layer-configuration and update-rule case whose op
    matches ``only``."""
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


def run(only=None, mode=None, seed=0):
    """Run the selected cases; ``mode`` overrides each gradient case's preferred mode.

    Returns ``(results, seconds)``.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    results = []
    for case, preferred in selected(only, seed):
        chosen = preferred if (mode is None or case.kind == "update_rule") else mode
        results.extend(run_case(case, chosen, rng))
    return results, time.perf_counter() - start
