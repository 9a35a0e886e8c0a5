"""Open every page of the built documentation in headless Chromium and check what a reader sees.

    python scripts/check_docs.py docs/_build/html      # CI runs this after sphinx-build

For each page, at a 1920 x 1080 window, with no network:

- every formula was typeset by the bundled MathJax: each ``.math`` element holds a MathJax
  rendering (``mjx-container``) and no TeX source is left on the page (``\\(``, ``\\[``), and MathJax
  reported no TeX error (``mjx-merror``);
- no code block or table is wider than the text column (nothing cut off or behind a scroll bar);
- every script the page loads comes from the documentation folder itself (no CDN).

Exit status 0 when every page passes, 1 otherwise, with one line per problem.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from headless import Browser, file_url  # noqa: E402

# Resolves when MathJax (if the page loads it) has typeset everything.
SETTLE = "window.MathJax && MathJax.startup ? MathJax.startup.promise.then(() => true) : true"

INSPECT = r"""(() => {
  const problems = [];
  const maths = Array.from(document.querySelectorAll('.math'));
  const untypeset = maths.filter(m => !m.querySelector('mjx-container'));
  if (untypeset.length) problems.push(`${untypeset.length} of ${maths.length} formulas not typeset, e.g. ${untypeset[0].textContent.slice(0, 60)}`);
  const errors = document.querySelectorAll('mjx-merror');
  if (errors.length) problems.push(`${errors.length} TeX errors, e.g. ${errors[0].textContent.slice(0, 60)}`);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let raw = null;
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest('pre, code, script, style, mjx-assistive-mml')) continue;
    if (/\\\(|\\\[/.test(node.textContent)) { raw = node.textContent.trim().slice(0, 60); break; }
  }
  if (raw !== null) problems.push(`raw LaTeX on the page: ${raw}`);
  for (const element of document.querySelectorAll('div.body pre, div.body table')) {
    if (element.closest('mjx-container')) continue;
    const box = element.closest('div.highlight') || element;
    if (element.scrollWidth > element.clientWidth + 1 || box.getBoundingClientRect().right > document.querySelector('div.body').getBoundingClientRect().right + 1) {
      problems.push(`${element.tagName.toLowerCase()} wider than the page (${element.scrollWidth} > ${element.clientWidth} px): ${element.textContent.trim().slice(0, 50)}`);
    }
  }
  for (const script of document.querySelectorAll('script[src]')) {
    if (!script.src.startsWith('file:')) problems.push(`script from the network: ${script.src}`);
  }
  return {problems, formulas: maths.length};
})()"""


def pages(folder):
    for root, _, files in os.walk(folder):
        if os.path.basename(root).startswith("_"):  # _static, _modules (source listings), _images
            continue
        for name in sorted(files):
            if name.endswith(".html"):
                yield os.path.join(root, name)


def check(folder):
    """``(problems, pages checked, formulas seen)``: problems as ``"page: what"`` lines."""
    problems, count, formulas = [], 0, 0
    with Browser() as browser:
        for page in pages(folder):
            browser.open(file_url(page), settle=SETTLE)
            result = browser.evaluate(INSPECT)
            relative = os.path.relpath(page, folder)
            problems += [f"{relative}: {problem}" for problem in result["problems"]]
            count += 1
            formulas += result["formulas"]
    return problems, count, formulas


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the built HTML documentation (docs/_build/html)")
    args = parser.parse_args(argv)
    problems, count, formulas = check(args.folder)
    for problem in problems:
        print(problem)
    print(f"{count} pages, {formulas} formulas checked in headless Chromium: {len(problems)} problem(s)")
    return 1 if problems or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
