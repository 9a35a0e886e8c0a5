"""Sphinx configuration for the fastdnn documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (from the repository root).
The figures shown in the pages are drawn by fastdnn itself at build time (``make_figures.py``).
"""

import os
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
# Document the working tree (fastdnn/ and verify/), whether or not it is installed.
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
html_static_path = []
html_theme_options = {
    "description": "Deep networks on NumPy arrays, trained by Numba kernels, behind a Keras-style API",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "240px",
}


def _make_figures(app):
    import make_figures

    make_figures.main(os.path.join(DOCS, "_generated"))
    import apple_graph  # the concept page's graph output, computed by fastdnn at build time

    apple_graph.main(os.path.join(DOCS, "_generated", "apple_graph.txt"))


def setup(app):
    app.connect("builder-inited", _make_figures)
