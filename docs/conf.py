"""Sphinx configuration for the fastdnn documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (from the repository root).
The figures shown in the pages are drawn by fastdnn itself at build time (``make_figures.py``), and
every sample output is produced by running its command or snippet (``make_samples.py``).
"""

import os
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
# Document the working tree (fastdnn/, its verifier included), whether or not it is installed.
sys.path.insert(0, ROOT)
sys.path.insert(0, DOCS)

import fastdnn  # noqa: E402

project = "fastdnn"
author = "the fastdnn developers"
copyright = "the fastdnn developers"
release = fastdnn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    # MathJax itself, copied into _static/mathjax: formulas render with no network.
    "sphinx-mathjax-offline",
]

exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
templates_path = []

# Docstrings are NumPy style; `single backticks` in them name Python objects.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
default_role = "py:obj"

autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Keep documented signatures readable: show the default's source text, not its repr.
autodoc_preserve_defaults = True

html_theme = "alabaster"
html_title = f"fastdnn {release}"
html_static_path = ["_static"]
html_css_files = ["fastdnn.css"]
html_theme_options = {
    "description": "Deep networks on NumPy arrays, trained by Numba kernels, behind a Keras-style API",
    "fixed_sidebar": True,
    # Wide enough for the install commands and the gradcheck tables at 1920 px (scripts/check_docs.py
    # checks that no code block or table is cut there); see _static/fastdnn.css.
    "page_width": "min(1900px, 100%)",
    "body_max_width": "none",
    "sidebar_width": "240px",
}


def _make_figures_and_samples(app):
    import make_figures
    import make_samples

    folder = os.path.join(DOCS, "_generated")
    make_figures.main(folder)
    values = make_samples.main(folder)
    # Numbers quoted in prose, as |name| substitutions on every page.
    app.config.rst_epilog = "\n".join(f".. |{name}| replace:: {value}" for name, value in values.items())


def setup(app):
    app.connect("builder-inited", _make_figures_and_samples)
