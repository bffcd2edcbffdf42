"""The documentation: every public name in the API reference, the site builds with -W, the
front-page example runs."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PUBLIC = ["secact", "secact.tl", "secact.get", "secact.pl", "secact.pp", "secact.datasets", "secact.io"]


def api_entries(text: str) -> tuple[set[str], set[str]]:
    """Full names listed in the autosummary tables of ``api.md``, and the modules it declares."""
    entries: set[str] = set()
    modules = set(re.findall(r"^\.\. module:: (\S+)$", text, flags=re.M))
    current = "secact"
    in_table = False
    for line in text.splitlines():
        if in_table and line.strip() and not line.startswith("   "):
            in_table = False
        if m := re.match(r"\.\. currentmodule:: (\S+)$", line):
            current = m.group(1)
        elif line.startswith(".. autosummary::"):
            in_table = True
        elif in_table and line.strip() and not line.strip().startswith(":"):
            entries.add(f"{current}.{line.strip()}")
    return entries, modules


def test_api_entries_parser_reads_tables():
    text = (
        ".. module:: secact.x\n.. currentmodule:: secact\n\n.. autosummary::\n   :toctree: generated\n\n"
        "   tl.activity\n   infer\n\nnot.this\n"
    )
    entries, modules = api_entries(text)
    assert entries == {"secact.tl.activity", "secact.infer"}
    assert modules == {"secact.x"}


@pytest.mark.parametrize("modname", PUBLIC)
def test_every_public_name_is_in_the_api_reference(modname):
    text = (DOCS / "api.md").read_text()
    entries, modules = api_entries(text)
    module = importlib.import_module(modname)
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        full = f"{modname}.{name}"
        if isinstance(obj, types.ModuleType):
            ok = obj.__name__ in modules
        elif name == "__version__":
            ok = "secact.__version__" in text
        else:
            ok = full in entries
        if not ok:
            missing.append(full)
    assert not missing, f"add these to an autosummary table (or module section) of docs/api.md: {missing}"


def test_api_reference_lists_only_what_exists():
    entries, modules = api_entries((DOCS / "api.md").read_text())
    for name in sorted(entries):
        modname, _, attr = name.rpartition(".")
        assert hasattr(importlib.import_module(modname), attr), name
    for modname in modules:
        importlib.import_module(modname)


def _cli_commands() -> list[str]:
    parser = importlib.import_module("secact.cli").build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


@pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None, reason="sphinx not installed (pip install -e '.[doc]')"
)
def test_docs_build_without_warnings(tmp_path):
    for extension in ("myst_nb", "sphinx_book_theme", "sphinx_autodoc_typehints", "sphinxarg"):
        if importlib.util.find_spec(extension) is None:
            pytest.skip(f"{extension} not installed (pip install -e '.[doc]')")
    out = tmp_path / "html"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("SECACT_DOCS_INTERSPHINX", None)  # offline build, as in CI
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html"]
    cmd += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    problems = [line for line in proc.stderr.splitlines() if re.search(r"WARNING|ERROR|CRITICAL|Error", line)]
    assert proc.returncode == 0, "sphinx-build -W failed:\n" + "\n".join(problems or [proc.stderr[-6000:]])

    # every API entry has a page that documents it
    entries, _ = api_entries((DOCS / "api.md").read_text())
    for name in entries:
        page = out / "generated" / f"{name}.html"
        assert page.is_file(), name
        assert f'id="{name}"' in page.read_text(), f"{name} is not documented on its page"
    # parameters render as a field list, and references to other functions resolve to links
    page = (out / "generated" / "secact.get.activity.html").read_text()
    assert "Parameters" in page and 'class="field-list' in page
    assert 'href="secact.tl.activity.html#secact.tl.activity"' in page
    # every tutorial notebook is in the site; every CLI command on the CLI page
    for nb in (DOCS / "tutorials").glob("*.ipynb"):
        assert (out / "tutorials" / f"{nb.stem}.html").is_file(), nb.name
    cli = (out / "cli.html").read_text()
    for command in _cli_commands():
        assert f'id="secact-{command}"' in cli, command
    # the changelog is included, not linked
    first = next(
        line for line in (DOCS.parent / "CHANGELOG.md").read_text().splitlines() if line.startswith("- ")
    )
    words = re.sub(r"[`*]", "", first[2:]).split(":")[0].strip()
    assert words in re.sub(r"<[^>]+>", "", (out / "changelog.html").read_text())


def test_front_page_example_runs(tmp_path, monkeypatch):
    """The code block of docs/index.md, as written, stores group and cell results."""
    import matplotlib.pyplot as plt

    text = (DOCS / "index.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    try:
        exec(compile(code, "docs/index.md", "exec"), namespace)
    finally:
        plt.close("all")
    adata, act = namespace["adata"], namespace["act"]
    assert set(adata.uns["secact"]) == {"groups", "cells"}
    assert act.shape == (adata.n_obs, adata.obsm["secact_zscore"].shape[1])
    # the planted IFNG response is the strongest IFNG activity among the groups
    planted = adata.uns["simulate"]["planted"]
    group = next(g for g, p in planted.items() if p == "IFNG")
    z = adata.uns["secact"]["groups"]["zscore"]["IFNG"]
    assert z.idxmax() == group
