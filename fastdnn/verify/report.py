"""Tables and JSON for check results."""

import json


def table(results):
    """A text table: op, argument, mode, max abs error, max rel error, tolerance, status."""
    headers = ("op", "argument", "mode", "max abs err", "max rel err", "tolerance", "status")
    rows = [
        (
            r.op,
            r.argument,
            r.mode,
            f"{r.max_abs_error:.2e}",
            f"{r.max_rel_error:.2e}",
            r.tolerance,
            "ok" if r.passed else "FAILED",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(value.ljust(w) for value, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def summary(results, seconds):
    ops = {r.op for r in results}
    failed = [r for r in results if not r.passed]
    failed_ops = {r.op for r in failed}
    verdict = "all passed" if not failed else f"{len(failed)} FAILED in {len(failed_ops)} op(s)"
    return f"{len(ops)} ops, {len(results)} checks: {verdict} ({seconds:.1f} s)"


def failures(results):
    """One paragraph per failed check (the worst element, both values, the tolerance)."""
    lines = []
    for r in results:
        if r.passed:
            continue
        error = r.extra.get("error")
        lines.append(f"{r.op}: {error}" if error else r.failure_report())
    return "\n".join(lines)


def write_json(path, results, seconds, extra=None):
    payload = {
        "summary": summary(results, seconds),
        "passed": all(r.passed for r in results),
        "seconds": seconds,
        "results": [r.as_dict() for r in results],
        **(extra or {}),
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, default=float)
