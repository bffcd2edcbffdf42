"""Shared docstring text, filled into docstrings with :func:`doc_params` (scanpy's style)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

__all__ = ["doc_params"]


def doc_params(**texts: str) -> Callable[[F], F]:
    """Fill ``{name}`` fields of a function's docstring with the given texts.

    A field alone on its line is replaced by the text indented like the field, so shared
    parameter blocks read as if written in place.
    """

    def decorate(fn: F) -> F:
        if fn.__doc__:
            lines = []
            for line in fn.__doc__.split("\n"):
                stripped = line.strip()
                name = stripped[1:-1] if stripped.startswith("{") and stripped.endswith("}") else None
                if name in texts:
                    indent = line[: len(line) - len(line.lstrip())]
                    lines.extend(indent + t if t else t for t in texts[name].split("\n"))
                else:
                    lines.append(line)
            fn.__doc__ = "\n".join(lines).format(**texts)
        return fn

    return decorate


doc_signature = """\
signature
    ``"SecAct"`` (1,170 secreted proteins; downloaded once and cached), ``"CytoSig"`` (43
    cytokines; ships with secact), a path to a genes x proteins table, or a genes x proteins
    DataFrame."""

doc_inference = """\
method
    ``"permutation"`` (SecAct's test: ``n_permutations`` permutations of the genes) or
    ``"analytic"``: the exact mean and variance of beta over all permutations of the genes
    (Hoeffding), with a two-sided normal p-value; no Monte-Carlo noise, one matrix product.
n_permutations
    Number of permutations ``B`` (at least 2) for ``method="permutation"``.
rng
    Permutation generator: ``"mt19937"`` (GSL Mersenne Twister, SecAct R 1.1's default),
    ``"srand"`` (glibc ``srand/rand``: the legacy SecAct C kernel and SecActPy) or ``"numpy"``
    (fast, not R-compatible).
seed
    Generator seed (0 as in SecAct; for ``mt19937`` it means GSL's 4357).
group_signatures
    Merge signatures whose columns correlate above ``group_cor`` (SecAct R's default); the
    members share their group's results and proteins are sorted like R. Without grouping
    proteins keep the signature's order.
group_cor
    Correlation cut-off for grouping, in (0, 1].
filter_signature
    Keep only proteins whose own gene is measured (for targeted panels).
lambda_
    Ridge penalty (5e5, SecAct R's default for every signature).
backend
    Where inference runs: ``"cpu"``; ``"gpu"`` (CuPy on a CUDA device, ``pip install
    'secact[gpu]'``; data in host memory are moved to the device block by block); or
    ``"auto"``: the GPU when the data are already there (a CuPy array or sparse matrix, e.g.
    after ``rapids_singlecell.get.anndata_to_GPU``, or dask with CuPy chunks), else the CPU.
    ``None`` takes ``secact.settings.backend`` (``"auto"``). Both engines give the same
    numbers to 1e-10 (identical permutation p-values)."""

doc_input = """\
layer
    Use ``adata.layers[layer]`` instead of ``X``.
use_raw
    Use ``adata.raw``. ``None`` follows scanpy: ``True`` when ``adata.raw`` is present and no
    ``layer`` is given.
gene_symbols
    Column of ``var`` with gene symbols (when ``var_names`` are e.g. Ensembl ids)."""

doc_storage = """\
stats
    Statistics to keep, a subset of ``("beta", "se", "zscore", "pvalue")`` (default all four).
    Cell-level results of 10^6 cells x 1,170 proteins take 9.4 GB per statistic in float64.
dtype
    Precision of cell-level results: ``"float64"`` (exact, the default) or ``"float32"``:
    results stored in float32 in ``obsm`` and the sidecar (half the memory and disk) and the
    permuted products computed in single precision (about 1.8x faster; moments over
    permutations stay float64; ``|delta z|`` below 1e-4 and the same calls at p < 0.05 on the test
    data). Group-level results are always float64."""

doc_run = """\
key_added
    Key of the results in ``adata.uns`` (and prefix of the ``obsm`` keys).
copy
    Return a modified copy instead of writing to ``adata``.
progress
    Show progress bars (default ``secact.settings.progress``: when scanpy's verbosity is at
    least 'info', or scanpy is not imported and the output is a terminal)."""

doc_stored = """\
``None`` when the results were written to ``adata`` (in memory, or a backed AnnData: in its
``uns`` / ``obsm`` in memory); the AnnData that holds them with ``copy=True`` (the copy) or
for an ``.h5ad`` path (a new AnnData of the file's observations, ``obs`` only, the file is
never modified). A view of a backed AnnData cannot hold results. The same rule for every
tool (:mod:`secact._results`); read the results with :mod:`secact.get`."""

doc_spatial_activity = """\
key
    ``key_added`` of the activity run.
activity
    Cell-level activity z-scores, when they are not in ``obsm`` of ``adata`` (``None``:
    ``obsm[key + "_zscore"]`` of the AnnData, or of the file for a path; for a run with
    ``out=``, the sidecar it recorded). Otherwise the sidecar written by
    ``secact.tl.activity(..., out=...)`` (an AnnData or its path), the AnnData of
    :func:`secact.get.activity`, or a cells x proteins DataFrame; rows are matched to
    the cells by ``obs_names``."""

doc_spatial_input = """\
layer, use_raw, gene_symbols
    Where the counts and gene symbols are (scanpy's rule: ``raw`` when present and no
    layer is given).
spatial_key
    ``obsm`` key of the coordinates."""


#: The shared texts of ``tl.activity``'s docstring.
activity_docs = {
    "signature": doc_signature,
    "inference": doc_inference,
    "input": doc_input,
    "storage": doc_storage,
    "run": doc_run,
    "stored": doc_stored
    + """

Per cell, a path input's new AnnData holds ``uns[key_added]["cells"]`` (the values are in
``out``; :func:`secact.get.activity` reads them); a view of a backed AnnData with ``out=``
returns ``None`` (everything is in the sidecar). With ``groupby`` a path input returns the
groups x proteins AnnData (``X`` = zscore, layers ``beta``, ``se``, ``pvalue``,
``obs["n_cells"]``, ``uns[key_added]["groups"]``), as written to ``out``.""",
}
