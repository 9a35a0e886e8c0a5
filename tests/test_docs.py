"""The documentation builds with warnings as errors, so the test suite catches doc rot too.

A broken cross-reference, a docstring whose RST no longer parses, a module that fails to import
under autodoc or a figure that ``docs/make_figures.py`` can no longer draw all fail this test.
The ``test`` extra installs Sphinx, so the README's test command runs it; skipped only where Sphinx,
matplotlib or scikit-learn is missing (a bare ``pip install pytest`` checkout).
"""

import os
import subprocess
import sys

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_docs_build_without_warnings(tmp_path):
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(tmp_path / "doctrees"), os.path.join(ROOT, "docs"), str(tmp_path / "html")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout[-5000:]}\n{result.stderr[-10000:]}"
    html = tmp_path / "html"
    for page in ("index", "getting-started", "concepts/losses", "concepts/optimizers", "api/layers", "guides/gradcheck"):
        assert (html / f"{page}.html").is_file(), page
    # The figures fastdnn draws at build time are in the pages.
    assert (html / "_images" / "history.png").is_file()
    assert (html / "_images" / "activations.png").is_file()
    assert 'src="_images/history.png"' in (html / "getting-started.html").read_text(encoding="utf-8")
