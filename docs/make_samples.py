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
import os
import re
import runpy
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


def run_examples():
    """Run first_model.py then callbacks.py in one namespace (in a scratch folder); their outputs."""
    namespace, outputs = {}, {}
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)  # the callbacks write best.fdnn and training.csv
        try:
            for name in ("first_model", "callbacks"):
                stream = io.StringIO()
                with contextlib.redirect_stdout(stream):
                    namespace = runpy.run_path(os.path.join(EXAMPLES, f"{name}.py"), init_globals=namespace)
                outputs[name] = stream.getvalue().rstrip("\n").splitlines()
        finally:
            os.chdir(here)
    # the epoch lines come in pairs ("Epoch k/20", then its numbers): keep epochs 1, 2 and the last
    lines = outputs["first_model"]
    epochs = [i for i, line in enumerate(lines) if line.startswith("Epoch ")]
    keep = set(range(epochs[0])) | {epochs[0], epochs[0] + 1, epochs[1], epochs[1] + 1, epochs[-1], epochs[-1] + 1}
    outputs["first_model"] = _elide(lines, keep)
    from fastdnn.cli import demo

    with contextlib.redirect_stdout(io.StringIO()):
        demo_accuracy = demo(verbose=0)
    values = {
        "first_model_loss": f"{namespace['loss']:.3f}",
        "first_model_accuracy": f"{namespace['accuracy']:.3f}",
        "demo_accuracy": f"{demo_accuracy:.3f}",
    }
    return outputs, values


def _gradcheck_command():
    """``python -c`` running the ``fastdnn-gradcheck`` console script's entry point from pyproject.toml."""
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as file:
        module, function = re.search(r'^fastdnn-gradcheck\s*=\s*"([\w.]+):(\w+)"', file.read(), re.MULTILINE).groups()
    code = f"import sys; sys.argv[0] = 'fastdnn-gradcheck'; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", code]


def gradcheck(*arguments):
    """``(exit status, output lines)`` of ``fastdnn-gradcheck arguments`` (argparse wrapped at 100 columns)."""
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([*_gradcheck_command(), *arguments], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return result.returncode, (result.stdout + result.stderr).rstrip("\n").splitlines()


def _shell(command, lines):
    return [f"$ {command}", *lines]


def gradcheck_samples():
    samples = {}
    _, lines = gradcheck("--help")
    samples["gradcheck_help"] = _shell("fastdnn-gradcheck --help", lines)
    _, lines = gradcheck("--quiet")
    samples["gradcheck_quiet"] = _shell("fastdnn-gradcheck --quiet", lines)
    _, lines = gradcheck("--only", "layer:Dense(tanh) 1x3*")
    samples["gradcheck_dense"] = _shell('fastdnn-gradcheck --only "layer:Dense(tanh) 1x3*"', lines)
    _, lines = gradcheck("--only", "adam*")
    # header, rule, the first four rows, one amsgrad row, the last row, the summary
    amsgrad = next(i for i, line in enumerate(lines) if "amsgrad" in line and "velocity_hat (flat step)" in line)
    rows = len(lines) - 2  # the blank line and the summary close the table
    samples["gradcheck_adam"] = _shell('fastdnn-gradcheck --only "adam*"', _elide(lines, {0, 1, 2, 3, 4, 5, amsgrad, rows - 1, rows, rows + 1}))
    _, lines = gradcheck("--list")
    samples["gradcheck_list"] = _shell("fastdnn-gradcheck --list", _elide(lines, {0, 1, 2, len(lines) - 2, len(lines) - 1}))
    status, lines = gradcheck("--only", "nothing-matches")
    samples["gradcheck_usage_error"] = _shell("fastdnn-gradcheck --only nothing-matches", lines) + _shell("echo $?", [str(status)])
    return samples


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
