"""Differential expression of groups against a reference: ``secact.tl.differential``."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._utils import want_progress
from ..core import ranksum as _rk
from ..io._genechunks import CscChunk, GeneChunkReader, open_h5ad_matrix

__all__ = ["differential"]

logger = logging.getLogger("secact")


def _disable(progress: bool | None) -> bool | None:
    show = want_progress(progress)
    return None if show is None else not show


_COLUMNS = [
    "group",
    "gene",
    "statistic",
    "zscore",
    "pvalue",
    "fdr",
    "log2fc",
    "pct_group",
    "pct_reference",
    "mean_group",
    "mean_reference",
]


def _resolve_anndata_matrix(adata, layer, use_raw):
    """Return ``(matrix, var_names, file_to_close, use_raw)`` for an AnnData object."""
    if layer is not None and use_raw:
        raise ValueError("pass either `layer` or `use_raw=True`, not both.")
    if use_raw is None:
        use_raw = layer is None and adata.raw is not None
    if adata.isbacked and adata.is_view:
        raise ValueError(
            "backed AnnData views are not supported (they would be read into memory). Pass the full "
            "backed object and set the groupby label of the unwanted cells to NaN (they are "
            "excluded), or call `.to_memory()` on the view."
        )
    if use_raw:
        if adata.raw is None:
            raise ValueError("use_raw=True but `adata.raw` is None; pass use_raw=False.")
        if adata.isbacked:
            f, _, var_names, matrix, _ = open_h5ad_matrix(adata.filename, use_raw=True)
            return matrix, var_names, f, True
        return adata.raw.X, adata.raw.var_names, None, True
    if layer is not None:
        if layer not in adata.layers:
            raise KeyError(f"layer {layer!r} not found; available layers: {list(adata.layers.keys())}")
        return adata.layers[layer], adata.var_names, None, False
    if adata.X is None:
        raise ValueError("`adata.X` is None; pass `layer=` or `use_raw=True`.")
    return adata.X, adata.var_names, None, False


def _group_codes(obs: pd.DataFrame, groupby: str) -> tuple[np.ndarray, list[Any]]:
    if groupby not in obs.columns:
        raise KeyError(f"groupby={groupby!r} is not a column of `obs`; columns: {list(obs.columns)}")
    col = obs[groupby]
    categorical = col.array if isinstance(col.dtype, pd.CategoricalDtype) else pd.Categorical(col)
    codes = np.asarray(categorical.codes, dtype=np.int32)
    return codes, list(categorical.categories)


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


def differential(
    adata: Any,
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
) -> Any:
    """Wilcoxon rank-sum differential expression of each group against a reference.

    For every group of ``adata.obs[groupby]`` and every gene, the group's cells (``x``) are
    compared with the reference cells (``y``) by the Mann-Whitney U / Wilcoxon rank-sum
    test with the normal approximation, exactly as
    ``scipy.stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=continuity)``
    (two-sided, tie-corrected). Genes are processed in chunks, so backed AnnData and
    ``.h5ad`` paths are handled out of core.

    Parameters
    ----------
    adata
        AnnData (in memory or backed, ``anndata.read_h5ad(path, backed="r")``), or a path to
        an ``.h5ad`` file (read out of core; the results are returned, not stored).
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
    ``None`` (results in ``adata.uns[key_added]``), the AnnData copy when ``copy=True``, or
    the results :class:`~pandas.DataFrame` when ``adata`` is a path.

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
    import anndata as ad

    if data not in ("auto", "counts", "log1p"):
        raise ValueError(f"data must be 'auto', 'counts' or 'log1p', got {data!r}.")
    pseudocount = float(pseudocount)
    if not np.isfinite(pseudocount) or pseudocount <= 0:
        raise ValueError(f"pseudocount must be a positive finite number, got {pseudocount}.")

    is_path = isinstance(adata, str | os.PathLike)
    f = None
    try:
        if is_path:
            f, obs, var_names, matrix, use_raw = open_h5ad_matrix(adata, layer=layer, use_raw=use_raw)
        elif isinstance(adata, ad.AnnData):
            if copy:
                if adata.isbacked:
                    raise ValueError(
                        "copy=True is not supported for backed AnnData; use copy=False (the results "
                        "are small and stored in `adata.uns`)."
                    )
                adata = adata.copy()
            obs = adata.obs
            matrix, var_names, f, use_raw = _resolve_anndata_matrix(adata, layer, use_raw)
        else:
            raise TypeError(
                f"adata must be an AnnData or a path to an .h5ad file, got {type(adata).__name__}."
            )
        result, params = _run(
            matrix=matrix,
            obs=obs,
            var_names=pd.Index(var_names).astype(str),
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
    finally:
        if f is not None:
            f.close()
    params.update(layer=layer, use_raw=bool(use_raw))
    if is_path:
        result.attrs["params"] = params
        return result
    adata.uns[key_added] = {"results": result, "params": params}
    logger.info("differential expression stored in adata.uns[%r]", key_added)
    return adata if copy else None


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
    from tqdm.auto import tqdm

    n_obs = matrix.shape[0]
    if len(obs) != n_obs or len(var_names) != matrix.shape[1]:
        raise ValueError(
            f"matrix shape {matrix.shape} does not match obs ({len(obs)}) x var ({len(var_names)})."
        )
    codes, categories = _group_codes(obs, groupby)
    ncat = len(categories)
    if ncat == 0:
        raise ValueError(f"obs[{groupby!r}] has no non-NaN labels.")
    n_cat = np.bincount(codes[codes >= 0], minlength=ncat).astype(np.int64)
    n_total = int(n_cat.sum())

    ovr = isinstance(reference, str) and reference == "rest"
    if ovr and any(str(c) == "rest" for c in categories):
        warnings.warn(
            "a category is named 'rest'; reference='rest' means all other cells. Rename the "
            "category to use it as a reference.",
            UserWarning,
            stacklevel=3,
        )
    ref = -1
    if not ovr:
        ref = _match_category(reference, categories, "reference")
        if n_cat[ref] < 2:
            raise ValueError(
                f"reference {reference!r} has {n_cat[ref]} cell(s); at least 2 are needed. Check the "
                "groupby column or pass reference='rest'."
            )
    if isinstance(groups, str):
        if groups != "all":
            groups = [groups]
    if isinstance(groups, str):
        wanted = [i for i in range(ncat) if i != ref]
    else:
        wanted = []
        for g in groups:
            i = _match_category(g, categories, "group")
            if i == ref:
                logger.info("group %r is the reference; not tested against itself", g)
                continue
            if i not in wanted:
                wanted.append(i)
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
            stacklevel=3,
        )
    if not selected:
        raise ValueError("no group left to test (all selected groups have fewer than 2 cells).")
    sel = np.asarray(selected, dtype=np.int64)
    use = np.zeros(ncat, dtype=np.bool_)
    use[sel] = True

    reader = GeneChunkReader(matrix, chunk_size=chunk_size)
    n_vars = reader.n_vars
    logger.info(
        "differential: %d cells, %d genes, %d groups vs %s; %d chunk(s) of %d genes (%s%s)",
        n_total,
        n_vars,
        len(sel),
        "rest" if ovr else repr(categories[ref]),
        len(reader),
        reader.chunk_size,
        reader.kind,
        ", backed" if reader.backed else "",
    )
    # expm1 sums are only needed for log1p data; for in-memory data "auto" can be settled by
    # a quick scan (stops at the first non-integer), backed data keeps both sums
    need_e = data != "counts"
    if data == "auto" and not reader.backed:
        m = reader.matrix
        stored = m if reader.kind == "dense" else m.data
        if stored.dtype.kind in "iub" or _rk.all_integer(np.asarray(stored).ravel(order="K")):
            need_e = False
    stat = np.zeros((n_vars, ncat))
    tie = np.zeros((n_vars, 1 if ovr else ncat))
    nnz = np.zeros((n_vars, ncat), dtype=np.int64)
    sx = np.zeros((n_vars, ncat))
    se = np.zeros((n_vars, ncat))
    nanf = np.zeros((n_vars, ncat), dtype=np.bool_)
    nonint = np.zeros(n_vars, dtype=np.bool_)
    with tqdm(total=len(reader), disable=_disable(progress), desc="rank-sum", unit="chunk") as bar:
        for a, b, chunk in reader:
            if isinstance(chunk, CscChunk):
                args = (chunk.data, chunk.indices, chunk.indptr, codes, n_cat)
                out = _rk.ovr_csc(*args, n_total, need_e) if ovr else _rk.ovo_csc(*args, ref, use, need_e)
            else:
                out = (
                    _rk.ovr_dense(chunk, codes, n_cat, n_total, need_e)
                    if ovr
                    else _rk.ovo_dense(chunk, codes, n_cat, ref, use, need_e)
                )
            del chunk
            st, ti, nz, s1, s2, nf, ni = out
            stat[a:b], nnz[a:b], sx[a:b], se[a:b], nanf[a:b], nonint[a:b] = st, nz, s1, s2, nf, ni
            tie[a:b] = ti.reshape(b - a, -1)
            bar.update(1)

    # ---- scale of the data ---------------------------------------------------------------
    if data == "auto":
        kind = "log1p" if nonint.any() else "counts"
        logger.info(
            "data='auto': values are %s -> %s", "non-integer" if kind == "log1p" else "integers", kind
        )
    else:
        kind = data

    # ---- statistics ----------------------------------------------------------------------
    n1 = n_cat[sel].astype(np.float64)  # (G,)
    if ovr:
        n2 = n_total - n1
        u1 = stat[:, sel] - n1 * (n1 + 1.0) / 2.0
        t = tie  # (genes, 1)
        bad = np.broadcast_to(nanf.any(axis=1, keepdims=True), u1.shape)
    else:
        n2 = np.full_like(n1, float(n_cat[ref]))
        u1 = stat[:, sel]
        t = tie[:, sel]
        bad = nanf[:, sel] | nanf[:, [ref]]
    u1 = np.where(bad, np.nan, u1)
    z, p = _rk.ranksum_z_p(u1, n1, n2, t, tie_correct=tie_correct, continuity=continuity)
    fdr = _rk.benjamini_hochberg(p.T).T

    # ---- fractions, means, fold changes --------------------------------------------------
    with np.errstate(divide="ignore", invalid="ignore"):
        pct_g = nnz[:, sel] / n1
        if ovr:
            pct_r = (nnz.sum(axis=1, keepdims=True) - nnz[:, sel]) / n2
        else:
            pct_r = np.broadcast_to(nnz[:, [ref]] / n2, pct_g.shape)
        if kind == "log1p":
            mean_g = se[:, sel] / n1
            mean_r = (se.sum(axis=1, keepdims=True) - se[:, sel]) / n2 if ovr else se[:, [ref]] / n2
        else:
            lib = np.nansum(sx, axis=0)  # counts of all genes per category
            lib_g = lib[sel]
            mean_g = np.where(lib_g > 0, 1e6 * sx[:, sel] / lib_g, 0.0)
            if ovr:
                lib_r = lib.sum() - lib_g
                mean_r = np.where(lib_r > 0, 1e6 * (sx.sum(axis=1, keepdims=True) - sx[:, sel]) / lib_r, 0.0)
            else:
                mean_r = np.where(lib[ref] > 0, 1e6 * sx[:, [ref]] / lib[ref], 0.0)
        mean_r = np.broadcast_to(mean_r, mean_g.shape)
        log2fc = np.log2((mean_g + pseudocount) / (mean_r + pseudocount))

    n_sel = len(sel)
    gene_codes = np.tile(np.arange(n_vars), n_sel)
    group_codes = np.repeat(np.arange(n_sel), n_vars)
    group_names = [str(categories[i]) for i in sel]
    if len(set(group_names)) != n_sel:  # pragma: no cover - distinct categories, equal strings
        raise ValueError("group labels are not unique as strings; rename the categories.")
    var_unique = var_names.is_unique
    if not var_unique:
        warnings.warn("var names are not unique; the `gene` column repeats names.", UserWarning, stacklevel=3)
    gene_cat = (
        pd.Categorical.from_codes(gene_codes, categories=var_names)
        if var_unique
        else pd.Categorical(np.asarray(var_names)[gene_codes])
    )

    def flat(a):
        return np.ascontiguousarray(np.asarray(a, dtype=np.float64).T).reshape(-1)

    result = pd.DataFrame(
        {
            "group": pd.Categorical.from_codes(group_codes, categories=group_names),
            "gene": gene_cat,
            "statistic": flat(u1),
            "zscore": flat(z),
            "pvalue": flat(p),
            "fdr": flat(fdr),
            "log2fc": flat(log2fc),
            "pct_group": flat(pct_g),
            "pct_reference": flat(pct_r),
            "mean_group": flat(mean_g),
            "mean_reference": flat(mean_r),
        },
        columns=_COLUMNS,
    )
    n_nan = int(np.broadcast_to(bad, u1.shape).any(axis=1).sum())
    if n_nan:
        warnings.warn(
            f"{n_nan} gene(s) contain NaN values; their statistics are NaN for the affected groups.",
            UserWarning,
            stacklevel=3,
        )
    params = {
        "groupby": groupby,
        "reference": "rest" if ovr else str(categories[ref]),
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
