"""Differential expression of groups against a reference: ``secact.tl.differential``."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .. import _results as _res
from .._docs import doc_params, doc_stored
from .._errors import ParamError
from .._logging import elapsed, hint, logger
from .._results import DE_COLUMNS, check_key, clean_uns
from ..core import differential as _de
from ..core.backend import on_device
from ..core.normalize import integer_valued
from ..io import resolve
from ..io._genechunks import GeneChunkReader
from ._common import group_codes

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["differential"]


def _match_category(name: Any, categories: list[Any], what: str) -> int:
    for i, c in enumerate(categories):
        if c == name:
            return i
    sname = str(name)
    for i, c in enumerate(categories):
        if str(c) == sname:
            return i
    shown = [str(c) for c in categories[:20]]
    more = "" if len(categories) <= 20 else f" ... ({len(categories)} in all)"
    raise ValueError(f"{what} {name!r} is not a category of groupby; categories: {shown}{more}")


@doc_params(stored=doc_stored)
def differential(
    adata: AnnData | str | os.PathLike,
    groupby: str,
    *,
    reference: str = "rest",
    groups: Literal["all"] | Sequence[str] = "all",
    layer: str | None = None,
    use_raw: bool | None = None,
    data: Literal["auto", "counts", "log1p"] = "auto",
    tie_correct: bool = True,
    continuity: bool = True,
    pseudocount: float = 1.0,
    key_added: str = "secact_de",
    copy: bool = False,
    progress: bool | None = None,
    chunk_size: int | None = None,
) -> AnnData | None:
    """Wilcoxon rank-sum differential expression of each group against a reference.

    For every group of ``adata.obs[groupby]`` and every gene, the group's cells (``x``) are
    compared with the reference cells (``y``) by the Mann-Whitney U / Wilcoxon rank-sum
    test with the normal approximation, exactly as
    ``scipy.stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=continuity)``
    (two-sided, tie-corrected). Genes are processed in chunks, so backed AnnData and
    ``.h5ad`` / ``.zarr`` paths are handled out of core.

    Parameters
    ----------
    adata
        AnnData (in memory or backed, ``anndata.read_h5ad(path, backed="r")``), or a path to
        an ``.h5ad`` file or ``.zarr`` store (read out of core; the results are returned in a
        new AnnData).
    groupby
        Categorical (or castable) column of ``obs``. Cells whose label is NaN are excluded
        from every comparison, including "rest".
    reference
        ``"rest"`` (each group against all other labelled cells, including groups that are
        not selected or are too small to be tested) or the name of a category (e.g.
        ``"non-targeting"``).
    groups
        ``"all"`` or a list of categories to test. The reference is never tested against
        itself. Groups with fewer than 2 cells (including unused categories) are skipped
        with a warning.
    layer
        Layer to use instead of ``X``.
    use_raw
        Use ``adata.raw``. ``None`` (scanpy's convention): use ``raw`` when present and no
        ``layer`` is given.
    data
        Scale of the values, for the fold change and means. ``"auto"``: ``"counts"`` when
        every finite stored value is exactly an integer, otherwise ``"log1p"``.
    tie_correct
        Tie correction of the variance of U.
    continuity
        Continuity correction (0.5) of the z-score.
    pseudocount
        Added to both means before the log ratio (same units as the means, see Notes).
    key_added
        Results are stored in ``adata.uns[key_added]``.
    copy
        Return a copy of ``adata`` with the results instead of modifying it (in-memory only).
    progress
        Show a progress bar over gene chunks. ``None``: when ``scanpy.settings.verbosity``
        is at least 2 (info).
    chunk_size
        Genes per chunk; ``None`` chooses it from a memory target (512 MiB of values).

    Returns
    -------
    anndata.AnnData or None
        {stored}

        ``adata.uns[key_added]`` is a dict with ``"results"``, a tidy DataFrame with one row per
        (group, gene) in category and ``var`` order:

        ``group``, ``gene``
            Categorical labels.
        ``statistic``
            Mann-Whitney U of the group (scipy's ``statistic`` for ``x`` = group,
            ``y`` = reference).
        ``zscore``
            Signed normal deviate ``sign(U - mu) * max(|U - mu| - 0.5, 0) / sigma`` (without
            the 0.5 if ``continuity=False``), positive when the group ranks higher.
        ``pvalue``
            Two-sided p-value, equal to scipy's. It is 1 where every value is tied (e.g. the
            gene is zero in all cells of both samples), NaN when either sample contains NaN.
        ``fdr``
            Benjamini-Hochberg adjusted p-value within the group.
        ``log2fc``
            ``log2((mean_group + pseudocount) / (mean_reference + pseudocount))``.
        ``pct_group``, ``pct_reference``
            Fraction of cells with a non-zero value.
        ``mean_group``, ``mean_reference``
            Means on the linear scale: for log1p data the mean of ``expm1(x)`` over cells; for
            counts the pooled CPM, ``1e6 * (counts of the gene in the sample) / (counts of all
            genes of the matrix in the sample)``.

        and ``"params"``, the settings used (with the resolved ``data`` scale).

    Notes
    -----
    Against ``"rest"``, each gene is ranked once over all labelled cells and every group's
    rank sum and the tie term come from that single ranking. Against a named reference, the
    gene's values are sorted once and each group's values are merged with the reference's
    within each block of ties. Zeros (explicit or implicit) form one tie block that is
    counted, not sorted. The kernels are parallel over genes (numba threads).
    """
    if data not in ("auto", "counts", "log1p"):
        raise ValueError(f"data must be 'auto', 'counts' or 'log1p', got {data!r}.")
    pseudocount = float(pseudocount)
    if not np.isfinite(pseudocount) or pseudocount <= 0:
        raise ValueError(f"pseudocount must be a positive finite number, got {pseudocount}.")
    check_key(key_added)
    with resolve(adata, layer=layer, use_raw=use_raw) as inp:
        if on_device(inp.matrix):
            msg = (
                "tl.differential runs on the CPU and the expression matrix is on a GPU (CuPy): move it "
                "first, e.g. rapids_singlecell.get.anndata_to_CPU(adata) (or layer=...), then run it again."
            )
            raise ValueError(msg)
        if inp.adata is not None and inp.adata.isbacked and inp.is_view:
            raise ValueError(
                "backed AnnData views are not supported (they would be read into memory). Pass the full "
                "backed object and set the groupby label of the unwanted cells to NaN (they are "
                "excluded), or call `.to_memory()` on the view."
            )
        dest = _res.target(inp, copy=copy)
        matrix = inp.matrix if inp.backed else inp.in_memory_matrix()
        if not inp.backed and getattr(matrix, "dtype", None) == np.float16:
            matrix = matrix.astype(np.float32)  # half precision: computed in single (a copy)
        if len(inp.var_names) == 0:
            raise ValueError("the expression matrix has 0 genes; nothing to test.")
        result, params = _run(
            matrix=matrix,
            obs=inp.obs,
            var_names=pd.Index(inp.var_names).astype(str),
            groupby=groupby,
            reference=reference,
            groups=groups,
            data=data,
            tie_correct=tie_correct,
            continuity=continuity,
            pseudocount=pseudocount,
            progress=progress,
            chunk_size=chunk_size,
        )
        use_raw = inp.use_raw
    params.update(layer=layer, use_raw=bool(use_raw))
    return _res.store(dest, "differential", key_added, {"results": result, "params": clean_uns(params)})


def _select_groups(categories, n_cat, reference, groups) -> tuple[int, np.ndarray, list[int]]:
    """Reference code (-1: rest), the tested categories and the skipped ones."""
    ncat = len(categories)
    ovr = isinstance(reference, str) and reference == "rest"
    if ovr and any(str(c) == "rest" for c in categories):
        warnings.warn(
            "a category is named 'rest'; reference='rest' means all other cells. Rename the "
            "category to use it as a reference.",
            UserWarning,
            stacklevel=4,
        )
    ref = -1
    if not ovr:
        ref = _match_category(reference, categories, "reference")
        if n_cat[ref] < 2:
            msg = "reference {ref!r} has {n} cell(s); at least 2 are needed. Check the groupby column"
            raise ParamError(msg + " or pass {reference='rest'}.", ref=reference, n=int(n_cat[ref]))
    if isinstance(groups, str) and groups == "all":
        wanted = [i for i in range(ncat) if i != ref]
    else:
        wanted = []
        for g in [groups] if isinstance(groups, str) else groups:
            i = _match_category(g, categories, "group")
            if i == ref:
                logger.info("group %r is the reference; not tested against itself", g)
            elif i not in wanted:
                wanted.append(i)
    if not wanted or not any(n_cat[i] for i in wanted):
        what = "the reference" if ref >= 0 else "one group"
        raise ValueError(
            f"nothing to compare: the cells have only {what} ({categories[ref] if ref >= 0 else ''}) "
            "among the selected groups. Test at least one other group."
        )
    n_total = int(n_cat.sum())
    selected, skipped = [], []
    for i in wanted:
        n_other = (n_total - n_cat[i]) if ovr else n_cat[ref]
        (selected if (n_cat[i] >= 2 and n_other >= 2) else skipped).append(i)
    if skipped:
        desc = ", ".join(f"{categories[i]!s} ({n_cat[i]})" for i in skipped[:10])
        more = "" if len(skipped) <= 10 else f", ... ({len(skipped)} in all)"
        warnings.warn(
            f"skipping {len(skipped)} group(s) with fewer than 2 cells (or fewer than 2 reference "
            f"cells): {desc}{more}",
            UserWarning,
            stacklevel=4,
        )
    if not selected:
        raise ValueError("no group left to test (all selected groups have fewer than 2 cells).")
    return ref, np.asarray(selected, dtype=np.int64), skipped


def _run(
    *,
    matrix,
    obs,
    var_names,
    groupby,
    reference,
    groups,
    data,
    tie_correct,
    continuity,
    pseudocount,
    progress,
    chunk_size,
):
    t0 = time.perf_counter()
    n_obs = matrix.shape[0]
    if len(obs) != n_obs or len(var_names) != matrix.shape[1]:
        raise ValueError(
            f"matrix shape {matrix.shape} does not match obs ({len(obs)}) x var ({len(var_names)})."
        )
    codes, categories = group_codes(obs, groupby)
    codes = codes.astype(np.int32)
    ncat = len(categories)
    if ncat == 0:
        raise ValueError(f"obs[{groupby!r}] has no non-NaN labels.")
    n_cat = np.bincount(codes[codes >= 0], minlength=ncat).astype(np.int64)
    ref, sel, skipped = _select_groups(categories, n_cat, reference, groups)
    use = np.zeros(ncat, dtype=np.bool_)
    use[sel] = True

    reader = GeneChunkReader(matrix, chunk_size=chunk_size)
    logger.info(
        "differential expression: %s cells, %s genes, %d group(s) vs %s; %d chunk(s) of %s genes (%s%s)",
        f"{int(n_cat.sum()):,}",
        f"{reader.n_vars:,}",
        len(sel),
        "rest" if ref < 0 else repr(categories[ref]),
        len(reader),
        f"{reader.chunk_size:,}",
        reader.kind,
        ", backed" if reader.backed else "",
    )
    # expm1 sums are only needed for log1p data; for in-memory data "auto" is settled by a
    # quick scan (stops at the first non-integer), backed data keeps both sums
    need_e = data != "counts"
    if data == "auto" and not reader.backed:
        m = reader.matrix
        if integer_valued(np.asarray(m if reader.kind == "dense" else m.data)):
            need_e = False
    acc = _de.rank_sums(reader, _de.RankSumChunk(codes, n_cat, ref, use, need_e), progress=progress)
    if data == "auto":
        kind = "log1p" if acc["nonint"].any() else "counts"
        hint("data='auto': values are %s -> %s", "non-integer" if kind == "log1p" else "integers", kind)
    else:
        kind = data
    st = _de.statistics(
        acc, n_cat, sel, ref, kind, tie_correct=tie_correct, continuity=continuity, pseudocount=pseudocount
    )

    n_vars, n_sel = reader.n_vars, len(sel)
    group_names = [str(categories[i]) for i in sel]
    if len(set(group_names)) != n_sel:
        raise ValueError("group labels are not unique as strings; rename the categories.")
    gene_codes = np.tile(np.arange(n_vars), n_sel)
    if var_names.is_unique:
        gene_cat = pd.Categorical.from_codes(gene_codes, categories=var_names)
    else:
        warnings.warn("var names are not unique; the `gene` column repeats names.", UserWarning, stacklevel=3)
        gene_cat = pd.Categorical(np.asarray(var_names)[gene_codes])

    def flat(a):
        return np.ascontiguousarray(np.asarray(a, dtype=np.float64).T).reshape(-1)

    columns = {
        "group": pd.Categorical.from_codes(np.repeat(np.arange(n_sel), n_vars), categories=group_names),
        "gene": gene_cat,
    }
    columns.update({k: flat(st[k]) for k in DE_COLUMNS[2:]})
    result = pd.DataFrame(columns, columns=list(DE_COLUMNS))
    n_nan = int(np.broadcast_to(st["bad"], st["statistic"].shape).any(axis=1).sum())
    if n_nan:
        warnings.warn(
            f"{n_nan} gene(s) contain NaN or infinite values; their statistics are NaN for the affected groups.",
            UserWarning,
            stacklevel=3,
        )
    logger.info(
        "computed differential expression of %d group(s) x %s genes in %s",
        n_sel,
        f"{n_vars:,}",
        elapsed(t0),
    )
    params = {
        "groupby": groupby,
        "reference": "rest" if ref < 0 else str(categories[ref]),
        "groups": group_names,
        "skipped_groups": [str(categories[i]) for i in skipped],
        "n_group": [int(n_cat[i]) for i in sel],
        "data": kind,
        "data_requested": data,
        "tie_correct": bool(tie_correct),
        "continuity": bool(continuity),
        "pseudocount": pseudocount,
        "method": "wilcoxon",
    }
    return result, params
