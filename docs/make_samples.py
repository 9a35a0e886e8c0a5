"""Produce every sample output the documentation shows, by running the code (``conf.py``, at build time).

A page shows a command or snippet and ``literalinclude``s the text written here, so a changed count,
option or message changes the page instead of making it wrong:

- ``first_model.txt``, ``callbacks.txt``: the output of ``docs/examples/first_model.py`` (the
  getting-started snippet, shown from the same file) and of ``callbacks.py`` run after it.
- the test accuracies that the getting-started page quotes (its snippet's, and ``fastdnn demo``'s).
- ``gradcheck_*.txt``: ``fastdnn-gradcheck`` runs (usage, ``--quiet``, ``--only``, ``--list``, a usage
  error and its exit status), through the console script's own entry point.

It also returns values quoted in prose (``|first_model_loss|``), which ``conf.py`` turns into RST
substitutions. Usage: ``python docs/make_samples.py [OUTPUT_FOLDER]`` (default ``docs/_generated``).
"""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
EXAMPLES = os.path.join(DOCS, "examples")


def _elide(lines, keep):
    """``lines`` with those whose index is not in ``keep`` replaced by one ``...`` per gap."""
    out, gap = [], False
    for i, line in enumerate(lines):
        if i in keep:
            out.append(line)
            gap = False
        elif not gap:
            out.append("...")
            gap = True
    return out


_MARK = "----- make_samples: next example -----"

# Runs the examples one after the other in one namespace, in a fresh interpreter (so that layer
# names and random state are what a reader running them gets), then prints the quoted values.
_RUNNER = """
import json, runpy, sys
namespace = {{}}
for path in sys.argv[1:]:
    namespace = runpy.run_path(path, init_globals=namespace)
    print({mark!r}, flush=True)
print(json.dumps({{"loss": float(namespace["loss"]), "accuracy": float(namespace["accuracy"])}}))
"""


def _environment():
    return {**os.environ, "COLUMNS": "100", "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}


def run_examples():
    """Run first_model.py then callbacks.py (in a scratch folder: the callbacks write files); their outputs."""
    names = ("first_model", "callbacks")
    paths = [os.path.join(EXAMPLES, f"{name}.py") for name in names]
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [sys.executable, "-c", _RUNNER.format(mark=_MARK), *paths],
            cwd=scratch, env=_environment(), capture_output=True, text=True, timeout=600,
        )
    if result.returncode != 0:
        raise RuntimeError(f"the documentation's examples failed:\n{result.stderr[-5000:]}")
    *chunks, quoted = result.stdout.split(_MARK + "\n")
    outputs = {name: chunk.rstrip("\n").splitlines() for name, chunk in zip(names, chunks)}
    # the epoch lines come in pairs ("Epoch k/20", then its numbers): keep epochs 1, 2 and the last
    lines = outputs["first_model"]
    epochs = [i for i, line in enumerate(lines) if line.startswith("Epoch ")]
    keep = set(range(epochs[0])) | {epochs[0], epochs[0] + 1, epochs[1], epochs[1] + 1, epochs[-1], epochs[-1] + 1}
    outputs["first_model"] = _elide(lines, keep)
    values = json.loads(quoted)
    from fastdnn.cli import demo

    with contextlib.redirect_stdout(io.StringIO()):
        demo_accuracy = demo(verbose=0)
    return outputs, {
        "first_model_loss": f"{values['loss']:.3f}",
        "first_model_accuracy": f"{values['accuracy']:.3f}",
        "demo_accuracy": f"{demo_accuracy:.3f}",
    }


_GRADCHECK_RUNNER = """
import contextlib, io, json, sys
from {module} import {function} as console
results = []
for arguments in json.loads(sys.argv[1]):
    sys.argv = ["fastdnn-gradcheck", *arguments]
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            status = console()
        except SystemExit as exit:
            status = exit.code
    results.append([0 if status is None else status if isinstance(status, int) else 1, output.getvalue()])
print(json.dumps(results))
"""


def gradcheck(*runs):
    """``[(exit status, output lines)]`` of ``fastdnn-gradcheck`` run with each argument list of ``runs``.

    All in one fresh interpreter, through the console script's entry point named in pyproject.toml;
    argparse wraps at 100 columns.
    """
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as file:
        module, function = re.search(r'^fastdnn-gradcheck\s*=\s*"([\w.]+):(\w+)"', file.read(), re.MULTILINE).groups()
    code = _GRADCHECK_RUNNER.format(module=module, function=function)
    result = subprocess.run([sys.executable, "-c", code, json.dumps(runs)], cwd=ROOT, env=_environment(),
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"fastdnn-gradcheck samples failed:\n{result.stderr[-5000:]}")
    return [(status, output.rstrip("\n").splitlines()) for status, output in json.loads(result.stdout.splitlines()[-1])]


def _shell(command, lines):
    return [f"$ {command}", *lines]


def gradcheck_samples():
    runs = [["--help"], ["--quiet"], ["--only", "layer:Dense(tanh) 1x3*"], ["--only", "adam*"], ["--list"], ["--only", "nothing-matches"]]
    (_, usage), (_, quiet), (_, dense), (_, adam), (_, listing), (status, error) = gradcheck(*runs)
    # the adam table: header, rule, the first four rows, one amsgrad row, the last row, the summary
    amsgrad = next(i for i, line in enumerate(adam) if "amsgrad" in line and "velocity_hat (flat step)" in line)
    rows = len(adam) - 2  # the blank line and the summary close the table
    return {
        "gradcheck_help": _shell("fastdnn-gradcheck --help", usage),
        "gradcheck_quiet": _shell("fastdnn-gradcheck --quiet", quiet),
        "gradcheck_dense": _shell('fastdnn-gradcheck --only "layer:Dense(tanh) 1x3*"', dense),
        "gradcheck_adam": _shell('fastdnn-gradcheck --only "adam*"', _elide(adam, {0, 1, 2, 3, 4, 5, amsgrad, rows - 1, rows, rows + 1})),
        "gradcheck_list": _shell("fastdnn-gradcheck --list", _elide(listing, {0, 1, 2, len(listing) - 2, len(listing) - 1})),
        "gradcheck_usage_error": _shell("fastdnn-gradcheck --only nothing-matches", error) + _shell("echo $?", [str(status)]),
    }


def main(folder):
    """Write every sample into ``folder``; return the values for the RST substitutions."""
    os.makedirs(folder, exist_ok=True)
    outputs, values = run_examples()
    samples = {**outputs, **gradcheck_samples()}
    for name, lines in samples.items():
        with open(os.path.join(folder, f"{name}.txt"), "w", encoding="utf-8") as file:
            file.write("\n".join(line.rstrip() for line in lines) + "\n")
    return values


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(DOCS, "_generated")))
