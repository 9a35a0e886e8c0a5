"""The headless-browser checks CI runs on the built docs (scripts/check_docs.py) can fail.

CI builds the documentation and runs the checker on every page; here it is shown a small page with
the faults it exists to catch. Skipped where no Chromium is installed (CI installs it).
"""

import os
import sys

import pytest

pytest.importorskip("websocket")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import check_docs  # noqa: E402
import headless  # noqa: E402

pytestmark = pytest.mark.skipif(headless.find_browser() is None, reason="no Chromium installed (apt-get install chromium)")

FAULTY = """<!DOCTYPE html><html><body><div class="body">
<p>A formula MathJax never saw: <span class="math notranslate nohighlight">\\(L = \\frac{1}{n}\\)</span></p>
<pre style="white-space: pre">%s</pre>
<script src="https://cdn.example.invalid/mathjax.js"></script>
</div></body></html>""" % ("x" * 400)

CLEAN = """<!DOCTYPE html><html><body><div class="body"><p>No formulas, short code:</p><pre>pip install .</pre></div></body></html>"""


def test_checker_reports_raw_latex_cut_code_and_network_scripts(tmp_path):
    (tmp_path / "faulty.html").write_text(FAULTY)
    problems, pages, formulas = check_docs.check(tmp_path)
    assert pages == 1 and formulas == 1
    text = "\n".join(problems)
    assert "1 of 1 formulas not typeset" in text
    assert "raw LaTeX on the page" in text
    assert "pre wider than the page" in text
    assert "script from the network: https://cdn.example.invalid/mathjax.js" in text


def test_checker_passes_a_clean_page(tmp_path):
    (tmp_path / "clean.html").write_text(CLEAN)
    assert check_docs.check(tmp_path) == ([], 1, 0)
