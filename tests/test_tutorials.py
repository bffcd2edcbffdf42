"""The tutorial notebooks in docs/tutorials: committed with clean outputs, and they still run.

The documentation shows the notebooks' committed outputs (myst-nb does not execute them), so
(a) every notebook must have been executed top to bottom without errors or warnings and show
its figures, and (b) executing it again with the installed package must succeed. The second
test runs every notebook in a fresh kernel of this interpreter, in a temporary working
directory (about a minute per notebook on two cores).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell; generous for slow CI machines

pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks in docs/tutorials (sdist without docs)")


def _read(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def _code_cells(nb: nbformat.NotebookNode) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def test_the_tutorials_are_there():
    names = {p.stem for p in NOTEBOOKS}
    assert {"bulk", "bulk_cohort", "single_cell", "atlas_backed", "differential", "spatial", "ccc"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_outputs(path: Path):
    nb = _read(path)
    cells = _code_cells(nb)
    assert cells, f"{path.name} has no code cells"
    counts = [c.execution_count for c in cells]
    assert None not in counts, (
        f"{path.name}: cells {[i for i, n in enumerate(counts) if n is None]} not executed"
    )
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name} was not executed top to bottom in one kernel (execution counts {counts}); "
        "re-execute it, e.g. jupyter nbconvert --to notebook --execute --inplace"
    )
    images = 0
    for i, cell in enumerate(cells):
        for out in cell.outputs:
            assert out.output_type != "error", f"{path.name}, code cell {i}: {out.ename}: {out.evalue}"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Warning" not in out.text, f"{path.name}, code cell {i} shows a warning:\n{out.text}"
            if out.output_type in ("display_data", "execute_result"):
                images += "image/png" in out.data or "image/svg+xml" in out.data
    assert images > 0, f"{path.name} shows no figure"
    assert nb.metadata.get("kernelspec", {}).get("language", "python") == "python"


@pytest.fixture
def kernel_of_this_python(tmp_path_factory, monkeypatch) -> str:
    """A kernelspec running this interpreter (not whatever 'python3' means on the machine)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "secact-tutorials"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "secact tutorials", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend, as in Jupyter
    return "secact-tutorials"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_executes(path: Path, tmp_path: Path, kernel_of_this_python: str):
    nb = _read(path)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    workdir = tmp_path / "run"
    workdir.mkdir()
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=kernel_of_this_python,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    cells = _code_cells(nb)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors
