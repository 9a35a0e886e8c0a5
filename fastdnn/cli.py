"""The ``fastdnn`` command. ``fastdnn demo`` trains an MLP on scikit-learn's handwritten digits;
``fastdnn compile`` compiles the kernels of common models into numba's disk cache, ahead of a first run."""

import argparse
import sys
import time

from numba.core.event import install_recorder

from fastdnn import compile_ahead, config, optimizers


def demo(epochs=50, batch_size=32, optimizer="adam", seed=0, verbose=1):
    """Train 64-64-10 (ReLU, softmax) on the digits, a held-out quarter for testing; return test accuracy."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise SystemExit("fastdnn demo needs scikit-learn for its bundled dataset: pip install 'fastdnn[examples]'") from None

    import fastdnn as fd

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=seed, stratify=digits.target
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

    fd.set_seed(seed)
    model = fd.Sequential(
        [
            fd.layers.Dense(64, activation="relu", input_shape=(64,)),
            fd.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if verbose:
        print(f"Digits: {len(x_train)} training and {len(x_test)} test images of 8x8 pixels, 10 classes")
        model.summary()
    # numba reports each real compilation (not a load from its disk cache) as a "numba:compile" event
    with install_recorder("numba:compile") as compilations:
        start = time.perf_counter()
        model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1, verbose=verbose)
        seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test)
    if verbose:
        # one start and one end event per compiled kernel
        compiled = sum(1 for _, event in compilations.buffer if event.is_start)
        cached = ", cached on disk for the next run" if config.CACHE else ""
        note = f" (including compiling {compiled} kernels{cached})" if compiled else ""
        print(f"Trained {epochs} epochs in {seconds:.2f} s{note}")
    print(f"Test loss: {loss:.4f}  Test accuracy: {accuracy:.4f}")
    return accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastdnn", description="fastdnn command line")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="train an MLP on scikit-learn's handwritten digits")
    demo_parser.add_argument("--epochs", type=int, default=50)
    demo_parser.add_argument("--batch-size", type=int, default=32)
    demo_parser.add_argument("--optimizer", default="adam", choices=optimizers.registry.names(aliases=True))
    demo_parser.add_argument("--seed", type=int, default=0)
    demo_parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    compile_parser = commands.add_parser(
        "compile",
        help="compile the kernels of common models into numba's disk cache (once per machine), so that a first run starts fast",
    )
    which = compile_parser.add_mutually_exclusive_group()
    which.add_argument(
        "--family",
        nargs="+",
        choices=compile_ahead.family_names(),
        help=f"the families to compile (default: {' '.join(compile_ahead.DEFAULT_FAMILIES)})",
    )
    which.add_argument("--all", action="store_true", help="every family")
    compile_parser.add_argument(
        "--dtype", nargs="+", choices=("float32", "float64"), help="float types (default: fd.config.floatx(), float32)"
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.epochs, args.batch_size, args.optimizer, args.seed, args.verbose)
    elif args.command == "compile":
        return compile_command(args)
    return 0


def compile_command(args):
    """``fastdnn compile``: one progress line per family, then the total and where the cache is."""
    if not config.CACHE:
        print("fastdnn compile: error: FASTDNN_CACHE=0 turns numba's disk cache off, so nothing compiled would be kept", file=sys.stderr)
        return 2
    families = compile_ahead.family_names() if args.all else args.family or list(compile_ahead.DEFAULT_FAMILIES)
    print(f"Compiling fastdnn's kernels for: {', '.join(families)}")
    start = time.perf_counter()
    rows = compile_ahead.compile_ahead(families, args.dtype)
    compiled = sum(row[2] for row in rows)
    where = compile_ahead.cache_location()
    print(f"Compiled {compiled} kernels in {time.perf_counter() - start:.1f} s" + (f", cached in {where}" if where else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
