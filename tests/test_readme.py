"""What the README states about the repository is checked here, so that it cannot drift.

The sample outputs of the documentation are produced at build time (docs/make_samples.py); the
README cannot be built, so its paths and counts are compared with the repository instead.
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as _file:
    README = _file.read()


def test_every_path_the_readme_names_exists_in_the_repository():
    """Files and folders in backticks (`benchmarks/benchmarks/bench_kernels.py`, `docs/`), and paths
    in shell commands (`python examples/train_data_parallel.py`)."""
    named = re.findall(r"`((?:\.\./)*(?:\.?[a-z_][\w-]*/)+(?:[\w-]+\.\w+)?)`", README)
    named += re.findall(r"python (?:-m \S+ )?((?:[\w-]+/)+[\w-]+\.py)", README)
    assert len(named) > 10
    generated = ("benchmarks/.asv/",)  # written by asv run, named as where results go
    missing = sorted({p for p in named if p not in generated and not os.path.exists(os.path.join(ROOT, p))})
    assert not missing, f"the README names paths that a checkout does not have: {missing}"


def test_gradcheck_count_in_the_readme_is_the_number_of_cases():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as file:
        module, function = re.search(r'^fastdnn-gradcheck\s*=\s*"([\w.]+):(\w+)"', file.read(), re.MULTILINE).groups()
    code = f"import sys; sys.argv[0] = 'fastdnn-gradcheck'; from {module} import {function}; sys.exit({function}())"
    result = subprocess.run([sys.executable, "-c", code, "--list"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    cases = int(re.search(r"^(\d+) cases$", result.stdout, re.MULTILINE).group(1))
    stated = [int(n) for n in re.findall(r"^\$ fastdnn-gradcheck --quiet\n(\d+) ops, \d+ checks: all passed", README, re.MULTILINE)]
    assert stated and all(n == cases for n in stated), f"README says {stated} ops, fastdnn-gradcheck --list has {cases} cases"
