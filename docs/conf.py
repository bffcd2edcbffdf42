"""Sphinx configuration of the secact documentation (myst-nb, book theme, napoleon)."""

from __future__ import annotations

import inspect
import os
import sys
from datetime import date
from importlib.metadata import version as _version
from pathlib import Path

from sphinx.pycode import ModuleAnalyzer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))  # secact_cli_docs, for the CLI page

# -- project -----------------------------------------------------------------------------------
project = "secact"
author = "secact developers"
copyright = f"{date.today():%Y}, {author}"
release = _version("secact")
version = release

# -- general -----------------------------------------------------------------------------------
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",
    "sphinxarg.ext",
]

master_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "jupyter_execute"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
nitpicky = True
smartquotes = False  # CLI options (--groupby) and code-like quotes stay as written

# -- MyST / myst-nb ----------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath", "deflist"]
myst_heading_anchors = 3
# notebooks are committed with their outputs; a separate test executes them
nb_execution_mode = "off"
nb_execution_raise_on_error = True
nb_output_stderr = "show"  # log lines (secact and scanpy log to stderr) are part of the story
nb_merge_streams = True

# -- autodoc / autosummary / napoleon ----------------------------------------------------------
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "inherited-members": False}
autoclass_content = "class"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_include_init_with_doc = False
napoleon_use_rtype = True
napoleon_use_param = True
napoleon_custom_sections = [("Params", "Parameters")]
typehints_defaults = "braces"
always_document_param_types = False
typehints_document_rtype = True

# Links into other projects' documentation need their inventories from the network. Builds
# are offline by default (CI has no network), so intersphinx is opt-in; offline, references to
# third-party objects cannot resolve and are not reported (references to secact's own objects
# always are).
INTERSPHINX = os.environ.get("SECACT_DOCS_INTERSPHINX", "") not in ("", "0")
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "pandas": ("https://pandas.pydata.org/pandas-docs/stable/", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "dask": ("https://docs.dask.org/en/stable/", None),
}
THIRD_PARTY = (
    "abc",
    "anndata",
    "collections",
    "dask",
    "h5py",
    "matplotlib",
    "numpy",
    "np",
    "os",
    "pandas",
    "pd",
    "pathlib",
    "scanpy",
    "scipy",
    "typing",
)
if not INTERSPHINX:
    intersphinx_mapping = {}
    nitpick_ignore_regex = [(r"py:.*", rf"({'|'.join(THIRD_PARTY)})(\..*)?")]

# -- HTML --------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "secact"
html_static_path: list[str] = []  # no custom static files (an empty folder would not survive git)
html_theme_options = {
    "repository_url": "https://github.com/scverse/secact",
    "use_repository_button": True,
    "path_to_docs": "docs/",
    "navigation_with_keys": False,
}


# -- hooks -------------------------------------------------------------------------------------
def _data_doc_comment(app, what, name, obj, options, lines) -> None:
    """Give a re-exported module constant the ``#:`` comment of the module that defines it.

    autodoc looks for the comment in the package that re-exports the name (``secact.datasets``)
    and otherwise shows the docstring of the value's type (``dict``); the defining submodule is
    found by identity among the package's loaded submodules.
    """
    if what != "data" or "." not in name:
        return
    if lines and obj.__doc__ and "\n".join(lines).strip() != inspect.cleandoc(type(obj).__doc__ or ""):
        return
    package, attr = name.rsplit(".", 1)
    for modname, module in list(sys.modules.items()):
        if not modname.startswith(package + ".") or getattr(module, attr, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:  # a module without source: try the next one
            continue
        comment = docs.get(("", attr))
        if comment:
            lines[:] = list(comment)
            return


#: Tutorials in reading order; notebooks not named here follow alphabetically.
TUTORIAL_ORDER = ("bulk", "single_cell", "spatial", "atlas_backed", "differential", "ccc")


def _order_tutorials(app, docname: str, source: list[str]) -> None:
    """List the tutorial notebooks that exist in reading order instead of the glob's order."""
    if docname != "tutorials/index" or ":glob:" not in source[0]:
        return
    found = sorted(p.stem for p in (Path(app.srcdir) / "tutorials").glob("*.ipynb"))
    if not found:  # keep the glob: sphinx then says that no notebook matched
        return
    ordered = [n for n in TUTORIAL_ORDER if n in found] + [n for n in found if n not in TUTORIAL_ORDER]
    source[0] = source[0].replace(":glob:\n\n*\n", "\n" + "\n".join(ordered) + "\n")


def setup(app) -> None:
    app.connect("autodoc-process-docstring", _data_doc_comment)
    app.connect("source-read", _order_tutorials)
