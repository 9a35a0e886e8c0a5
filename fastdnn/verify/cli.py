"""``fastdnn-gradcheck``: check every backward pass and update rule from the shell.

Exit status: 0 when every check passes, 1 when any fails, 2 on a usage error.
"""

import argparse
import sys

from fastdnn.verify import report, run, selftest


def _parser():
    parser = argparse.ArgumentParser(
        prog="fastdnn-gradcheck",
        description="Check every gradient and update rule of fastdnn against finite differences and a NumPy reference.",
    )
    parser.add_argument("model", nargs="?", help="a saved model (.fdnn) to check end to end instead of the built-in cases")
    parser.add_argument("--only", metavar="PATTERN", help="only ops matching PATTERN: a substring, or a glob (adam*, layer:Dense*)")
    parser.add_argument("--mode", choices=("full", "random"), help="full Jacobian or random directions for every case (default: each case's own)")
    parser.add_argument("--seed", type=int, default=0, help="seed for inputs and random directions (default 0)")
    parser.add_argument("--json", metavar="FILE", help="also write machine-readable results to FILE")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--self-test", action="store_true", help="plant known bugs in copies of the kernels and show each is caught")
    parser.add_argument("--quiet", action="store_true", help="print failures and the summary only")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes for the checks (default: one per core, for 100 cases or more; 1: all in this "
        "process). The first run on a machine is mostly compiling kernels, which the workers do side by side",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: check every numba.cuda kernel against its (finite-difference-checked) CPU twin, float64 and float32",
    )
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"argument --jobs: expected a positive number of processes, received {args.jobs}")
    if args.self_test:
        return _self_test(args)
    if args.device == "cuda":
        return _check_cuda(args)
    if args.model:
        return _check_saved_model(args)
    chosen = run.selected(args.only, args.seed)
    if not chosen:
        parser.print_usage(sys.stderr)
        print(f"fastdnn-gradcheck: error: no case matches --only {args.only!r} (see --list)", file=sys.stderr)
        return 2
    if args.list:
        for case, mode in chosen:
            print(f"{case.op}  [{mode if args.mode is None or case.kind == 'update_rule' else args.mode}]")
        print(f"{len(chosen)} cases")
        return 0
    results, seconds = run.run(args.only, args.mode, args.seed, jobs=args.jobs)
    if not args.quiet:
        print(report.table(results))
        print()
    failures = report.failures(results)
    if failures:
        print(failures)
        print()
    print(report.summary(results, seconds))
    if args.json:
        report.write_json(args.json, results, seconds, {"seed": args.seed, "mode": args.mode, "only": args.only})
    return 0 if all(r.passed for r in results) else 1


def _check_saved_model(args):
    import fastdnn as fd
    from fastdnn.verify.models import check_model, random_batch

    try:
        model = fd.load_model(args.model)
    except (OSError, ValueError) as error:
        print(f"fastdnn-gradcheck: error: {error}", file=sys.stderr)
        return 2
    if not model.compiled:
        print(f"fastdnn-gradcheck: error: {args.model} was saved without a loss; nothing to differentiate", file=sys.stderr)
        return 2
    x, y = random_batch(model, seed=args.seed)
    result = check_model(model, x, y, mode=args.mode, seed=args.seed)
    if not args.quiet:
        print(report.table(result.results))
        print()
    print(result)
    verdict = "all passed" if result.passed else "FAILED"
    print(f"\n{args.model}: {len(result.results)} parameter arrays checked on a random batch of {len(x)}: {verdict}")
    if args.json:
        report.write_json(args.json, result.results, 0.0, {"model": args.model, "per_layer": result.per_layer()})
    return 0 if result.passed else 1


def _check_cuda(args):
    from fastdnn import backend

    reason = backend.cuda_unavailable_reason()
    if reason is not None:
        print(f"fastdnn-gradcheck: error: --device cuda: CUDA is unavailable: {reason}", file=sys.stderr)
        return 2
    from fastdnn.verify import agreement

    results, seconds = agreement.run(seed=args.seed, only=args.only)
    gradients, gradient_seconds = agreement.gradient_run(seed=args.seed, only=args.only)
    if not results and not gradients:
        print(f"fastdnn-gradcheck: error: no CUDA kernel or model case matches --only {args.only!r}", file=sys.stderr)
        return 2
    shown = results if not args.quiet else [r for r in results if not r.passed]
    if shown:
        print(agreement.table(shown))
        print()
    if gradients and not args.quiet:
        print(report.table(gradients))
        print()
    if report.failures(gradients):
        print(report.failures(gradients))
        print()
    if results:
        print(agreement.summary(results, seconds))
    if gradients:
        print("model gradients through the CUDA kernels: " + report.summary(gradients, gradient_seconds))
    if args.json:
        import dataclasses
        import json

        payload = {
            "summary": agreement.summary(results, seconds),
            "results": [dataclasses.asdict(r) for r in results],
            "gradients": [r.as_dict() for r in gradients],
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, default=float)
    return 0 if all(r.passed for r in results) and all(r.passed for r in gradients) else 1


def _self_test(args):
    rows, seconds = selftest.self_test(args.seed)
    width = max(len(r["description"]) for r in rows)
    print(f"{'planted bug':{width}s}  {'kind':18s}  {'cases':>5s}  result")
    for row in rows:
        print(f"{row['description']:{width}s}  {row['kind']:18s}  {row['cases']:5d}  {'caught' if row['caught'] else 'MISSED'}")
    caught = sum(row["caught"] for row in rows)
    print(f"\nself-test: {caught} of {len(rows)} planted bugs caught ({seconds:.1f} s)")
    if args.json:
        import json

        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"planted": len(rows), "caught": caught, "mutations": rows}, handle, indent=2)
    return 0 if caught == len(rows) else 1


def console():
    """Entry point of the console script: ``main`` with a quiet exit when the output pipe closes."""
    try:
        return main()
    except BrokenPipeError:  # e.g. fastdnn-gradcheck --list | head
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(console())
