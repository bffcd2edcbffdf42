"""Cell-cell communication between neighbouring cells: ``secact.tl.ccc_spatial``."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .. import _results as res
from .._checks import check_positive_int
from .._docs import doc_params, doc_spatial_activity, doc_spatial_input, doc_stored
from ..core import spatial as _sp
from ..io import resolve
from ._common import group_codes
from ._spatial_common import (
    activity_zscores,
    check_nonnegative,
    check_positive,
    coordinates,
    correlation,
    kept,
    protein_expression,
)

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["ccc_spatial"]

logger = logging.getLogger("secact")


@doc_params(activity=doc_spatial_activity, spatial=doc_spatial_input, stored=doc_stored)
def ccc_spatial(
    adata: AnnData | str | os.PathLike,
    groupby: str,
    *,
    radius: float = 20,
    key: str = "secact",
    activity: pd.DataFrame | AnnData | str | os.PathLike | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    spatial_key: str = "spatial",
    scale_factor: float = 1000,
    n_background: int = 1000,
    rng: Literal["R", "numpy"] = "R",
    seed: int = 123,
    ratio_cutoff: float = 0.2,
    padj_cutoff: float = 0.01,
    cor_cutoff: float = 0.05,
    cor_padj_cutoff: float = 0.01,
    key_added: str = "secact_ccc_spatial",
    copy: bool = False,
) -> AnnData | None:
    """Cell-cell communication between neighbouring cells of single-cell spatial data.

    SecAct R's ``SecAct.CCC.scST``:

    1. **Filter.** Cells within ``radius`` of each other (``obsm[spatial_key]``, same unit)
       are neighbours. Each secreted protein's activity (cell-level z-scores of
       :func:`secact.tl.activity`, negatives set to 0) is correlated (Spearman) with the
       summed expression of its gene in the cell's neighbours; proteins with ``r >
       cor_cutoff`` and BH-adjusted ``p < cor_padj_cutoff`` are kept.
    2. **Communication.** For every pair of cell types and both directions, over the
       neighbouring sender-receiver pairs: the products of sender gene expression
       (``log2(counts / total * scale_factor + 1)``) and receiver activity; ``ratio`` =
       fraction of positive products (kept when ``> ratio_cutoff``), ``strength`` = their
       mean, ``pvalue`` = the rank of ``strength`` among ``n_background`` means of as many
       random sender-receiver pairs of the same two types. Type pairs where fewer than 5% of
       both types' cells are neighbours are skipped. BH over all rows; ``padj <
       padj_cutoff`` kept, sorted by ``padj``.

    With ``rng="R"`` (default) the table is SecAct R's: the background pairs are R's
    ``set.seed(123)`` / ``sample()`` draws, draw for draw, and means, comparisons and
    rounding follow R's arithmetic (see ``rng``).

    Run ``secact.tl.activity(adata, ..., method="analytic")`` (per cell) first; for an
    atlas opened backed its results may stream to a sidecar (``out=``), found here through
    ``adata.uns[key]`` or passed as ``activity``.

    Parameters
    ----------
    adata
        Spatial data with raw counts (``X``, ``layer`` or ``raw``) and cell coordinates in
        ``obsm[spatial_key]``: an AnnData in memory, one opened with ``backed="r"``, or the
        path of an ``.h5ad`` file. Only the counts of the secreted proteins' genes and each
        cell's total are kept, read block by block (``secact.settings.batch_size`` cells at
        a time), so a backed file is never loaded whole.
    groupby
        Column of ``obs`` with cell types; cells without a label take no part.
    radius
        Neighbour distance cut-off, in the coordinates' unit (R: µm).
    {activity}
    {spatial}
    scale_factor
        Counts per cell before ``log2(x + 1)`` (R: 1000 here).
    n_background
        Random background sets per type pair (R: 1000).
    rng
        Generator of the background draws. ``"R"``: R's own, as ``SecAct.CCC.scST`` draws
        them — ``set.seed(seed)`` before each type pair, then ``sample()`` of all senders
        and of all receivers (R >= 3.6's Mersenne-Twister with rejection sampling,
        ``secact.core.rsample``), so ``pvalue`` and ``padj`` equal R's (``padj`` bit for
        bit; R's table rounds ``ratio`` and ``pvalue`` to 15 significant digits). Cell types
        are paired in the order they first appear, as R's ``unique``; which of two types
        draws first is decided by comparing their names as Python strings, as R does in the
        C locale (R compares in the session's collation: in e.g. ``en_US`` names that mix
        upper and lower case or hold punctuation may compare otherwise, and their p-values
        then differ by Monte-Carlo noise). A cell type with a single cell is drawn as itself
        (R's ``sample()`` would draw from ``1:index`` there). ``"numpy"``: one
        ``numpy.random.Generator(seed)`` for all type pairs (the same seed gives the same
        result, p-values differ from R's by Monte-Carlo noise).
    seed
        Seed of the background draws (R: 123).
    ratio_cutoff, padj_cutoff
        R's ``ratio_cutoff`` and ``padj_cutoff``.
    cor_cutoff, cor_padj_cutoff
        Spatial correlation filter of step 1 (R: 0.05 and 0.01).
    key_added
        ``uns`` key of the results.
    copy
        Return a copy with the results instead of writing to ``adata`` (in-memory AnnData only).

    Returns
    -------
    anndata.AnnData or None
        {stored}

        ``adata.uns[key_added]`` (writable by anndata) is a dict; read the links with
        :func:`secact.get.ccc`, draw them with :func:`secact.pl.ccc_circle` and the other
        CCC plots:

        ``"links"``
            One row per sender, secreted protein and receiver, sorted by ``padj``, with the
            columns ``sender``, ``secreted_protein``, ``receiver``, ``sender_count``,
            ``receiver_count``, ``neighboring_pairs``, ``communicating_pairs``, ``ratio``,
            ``strength``, ``pvalue``, ``padj`` (``secact.core.spatial.CCC_COLUMNS``); the
            index is ``"<sender>_<protein>_<receiver>"``.
        ``"spatial_correlation"``
            The filter of step 1 per protein: ``r``, ``pvalue``, ``padj``.
        ``"params"``
            The settings used.
    """
    res.check_key(key_added)
    check_positive_int(n_background, "n_background")
    if rng not in _sp.RNG_KINDS:
        raise ValueError(f"rng must be one of {_sp.RNG_KINDS}, got {rng!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}.")
    for name, value in (("ratio_cutoff", ratio_cutoff), ("padj_cutoff", padj_cutoff)):
        check_nonnegative(name, value)
    check_positive("scale_factor", scale_factor)
    with resolve(adata, layer=layer, use_raw=use_raw) as inp:
        dest = res.target(inp, copy=copy)
        codes, categories = group_codes(inp.obs, groupby)
        act = activity_zscores(inp, key, activity).clip(lower=0.0)
        coords = coordinates(inp, spatial_key)
        i, j, d = _sp.neighbor_pairs(coords, radius)
        expr = protein_expression(inp, gene_symbols, list(act.columns), scale_factor)
    w = _sp.neighbor_weights(len(coords), i, j, d)

    corr = correlation(act, expr, w)
    chosen = kept(corr, cor_cutoff, cor_padj_cutoff)
    logger.info("%d/%d secreted proteins kept to infer cell-cell communication.", len(chosen), act.shape[1])
    cols = [act.columns.get_loc(p) for p in chosen]
    rows = _sp.ccc_spatial(
        expr[:, cols],
        act.to_numpy()[:, cols],
        codes,
        categories,
        i,
        j,
        chosen,
        n_background=int(n_background),
        rng=rng,
        seed=int(seed),
        ratio_cutoff=ratio_cutoff,
        padj_cutoff=padj_cutoff,
    )
    table = pd.DataFrame(rows, columns=list(_sp.CCC_COLUMNS))
    table.index = pd.Index(
        [f"{r.sender}_{r.secreted_protein}_{r.receiver}" for r in table.itertuples()], dtype=str
    )
    params = {
        "groupby": groupby,
        "radius": float(radius),
        "key": key,
        "layer": layer,
        "use_raw": inp.use_raw,
        "spatial_key": spatial_key,
        "scale_factor": float(scale_factor),
        "n_background": int(n_background),
        "rng": rng,
        "seed": int(seed),
        "ratio_cutoff": float(ratio_cutoff),
        "padj_cutoff": float(padj_cutoff),
        "cor_cutoff": float(cor_cutoff),
        "cor_padj_cutoff": float(cor_padj_cutoff),
        "n_neighbor_pairs": int(i.size // 2),
    }
    entry = {"links": table, "spatial_correlation": corr, "params": res.clean_uns(params)}
    return res.store(dest, "ccc_spatial", key_added, entry)
