"""The package's shape: scanpy's API conventions, the one-loop rule, packaging facts."""

from __future__ import annotations

import inspect
import re
from importlib import metadata
from pathlib import Path

import pytest

import secact

SRC = Path(secact.__file__).parent
TOOLS = [secact.tl.activity, secact.tl.differential]
PUBLIC = [
    *TOOLS,
    secact.infer,
    secact.get.activity,
    secact.get.differential,
    secact.get.de_matrix,
    secact.pl.activity_heatmap,
    secact.pp.gene_map,
    secact.pp.transfer_symbols,
    secact.tl.signaling_velocity,
    secact.datasets.simulate_spatial,
    secact.pl.spatial_activity,
    secact.pl.velocity,
]
# every public name of the AnnData namespaces (scanpy's conventions: tests/test_conventions.py)
EVERY = [getattr(mod, name) for mod in (secact.tl, secact.pl, secact.get) for name in mod.__all__]


@pytest.mark.parametrize("fn", PUBLIC, ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_at_most_three_positional_parameters(fn):
    params = inspect.signature(fn).parameters.values()
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert len(positional) <= 3, [p.name for p in positional]


@pytest.mark.parametrize("fn", TOOLS, ids=lambda f: f.__name__)
def test_tools_take_keyword_only_copy_and_return_anndata_or_none(fn):
    sig = inspect.signature(fn)
    assert sig.parameters["copy"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["copy"].default is False
    assert sig.parameters["key_added"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "AnnData" in str(sig.return_annotation) and "None" in str(sig.return_annotation)


@pytest.mark.parametrize("fn", [*PUBLIC, *EVERY], ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_docstrings_document_every_parameter(fn):
    doc = inspect.getdoc(fn) or ""
    assert "{" not in doc.split("Returns")[0] or "{{" in doc, "unfilled docstring field"
    for name in inspect.signature(fn).parameters:
        assert re.search(rf"^\s*([\w, ]*\b{name}\b[\w, ]*)$", doc, re.M), f"{name} is not documented"


def test_one_loop_over_blocks_and_no_dask_in_tl():
    """Blocks are consumed in one place: the runner. tl never imports dask."""
    consumers = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "datasets":  # text tables, not expression data
            continue
        text = path.read_text()
        for m in re.finditer(r"^\s*for .+ in .*(row_blocks|blocks|reader)\b.*:$", text, re.M):
            consumers.append(f"{path.relative_to(SRC)}: {m.group(0).strip()}")
    assert consumers == [], consumers
    for path in (SRC / "tl").rglob("*.py"):
        assert not re.search(r"^\s*(import|from) dask", path.read_text(), re.M), path
    assert len((SRC / "tl" / "_activity.py").read_text().splitlines()) <= 300


def test_packaging_facts():
    """anndata >= 0.11 (the element API we use), no scanpy plugin entry point (scanpy has no loader)."""
    requires = metadata.requires("secact") or []
    assert any(re.fullmatch(r"anndata\s*>=\s*0\.1[1-9].*", r) for r in requires), requires
    assert not [e for e in metadata.entry_points(group="scanpy.plugins") if e.value.startswith("secact")]


def test_dead_code_is_gone():
    import secact.core.plan as plan

    assert not hasattr(secact.datasets, "signature_lambda")
    assert not hasattr(secact.io, "check_finite")
    assert not (SRC / "core" / "moments.py").exists()
    assert not {"genes", "columns"} & {f.name for f in plan.Plan.__dataclass_fields__.values()}
