"""Spatial signalling patterns by NMF: ``secact.tl.signaling_patterns``."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import _results as res
from .._checks import check_positive_int
from .._docs import doc_params, doc_spatial_activity, doc_spatial_input, doc_stored
from ..core import spatial as _sp
from ..io import resolve
from ._spatial_common import (
    activity_zscores,
    check_positive,
    coordinates,
    correlation,
    kept,
    protein_expression,
)

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["signaling_patterns"]

logger = logging.getLogger("secact")


@doc_params(activity=doc_spatial_activity, spatial=doc_spatial_input, stored=doc_stored)
def signaling_patterns(
    adata: AnnData | str | os.PathLike,
    k: int | Sequence[int],
    *,
    key: str = "secact",
    activity: pd.DataFrame | AnnData | str | os.PathLike | None = None,
    radius: float = 200,
    sigma: float = 100,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    spatial_key: str = "spatial",
    scale_factor: float = 1e5,
    cor_cutoff: float = 0.05,
    cor_padj_cutoff: float = 0.01,
    n_runs: int = 10,
    seed: int = 0,
    max_iter: int = 2000,
    key_added: str = "secact_patterns",
    copy: bool = False,
) -> AnnData | None:
    """Spatial signalling patterns of secreted proteins by NMF (SecAct R's ``SecAct.signaling.pattern``).

    1. **Filter.** Activity z-scores (negatives set to 0) are correlated (Spearman) with each
       protein's gene expression (``log2(counts / total * scale_factor + 1)``) summed over
       the neighbours within ``radius`` with Gaussian weights ``exp(-d^2 / (2 sigma^2))``;
       proteins with ``r > cor_cutoff`` and BH-adjusted ``p < cor_padj_cutoff`` are kept.
    2. **NMF.** The kept proteins x cells activities (non-negative) are factorised into
       ``k`` patterns: KL divergence, multiplicative updates, random start (R's
       ``NMF::nmf`` default). With several ``k``, each is fitted with the best of
       ``n_runs`` starts, the silhouette of the cells clustered by their largest pattern
       weight is computed, and R's rule picks ``k``: the rank right after the largest drop
       in silhouette between consecutive ranks.

    Needs scikit-learn (``pip install scikit-learn``).

    Parameters
    ----------
    adata
        Spatial data with raw counts and coordinates in ``obsm[spatial_key]``: an AnnData in
        memory, opened with ``backed="r"``, or an ``.h5ad`` path. The counts are read block
        by block; only the secreted proteins' genes and each spot's total are kept. The
        activity z-scores come from ``secact.tl.activity(adata, ..., method="analytic")``.
    k
        Number of patterns, or several candidates (e.g. ``range(2, 9)``).
    {activity}
    radius, sigma
        Neighbourhood radius and Gaussian width (R: 200 and 100 µm, spot data).
    {spatial}
    scale_factor
        Counts per cell before ``log2(x + 1)`` (R: 1e5 here).
    cor_cutoff, cor_padj_cutoff
        Spatial correlation filter (R: 0.05 and 0.01).
    n_runs
        Random starts per candidate ``k`` when several are given (R: ``nrun = 10``).
    seed
        Seed of the random starts; R's ``seed = 123456`` starts are not reproduced.
    max_iter
        Iterations of the multiplicative updates.
    key_added
        Key of the results.
    copy
        Return a copy with the results instead of writing to ``adata`` (in-memory AnnData only).

    Returns
    -------
    anndata.AnnData or None
        {stored}

        A new AnnData of a path input also holds the coordinates (``obsm[spatial_key]``). Read the results with
        :func:`secact.get.patterns`, the secreted proteins of each pattern (R's
        ``SecAct.signaling.pattern.gene``) with :func:`secact.get.pattern_genes`.

        ``adata.obsm[key_added]``
            Cells x k DataFrame of pattern weights, columns ``"1"`` ... ``"k"`` (R's
            ``signal.H`` transposed).
        ``adata.uns[key_added]``
            A dict: ``"loadings"`` (proteins x k DataFrame, R's ``weight.W``),
            ``"spatial_correlation"`` (``r``, ``pvalue``, ``padj`` per protein), ``"k"``
            (the rank used), ``"silhouette"`` (DataFrame of ``k`` and ``silhouette``, when
            several ``k`` were given) and ``"params"``.
    """
    res.check_key(key_added)
    ks = [int(k)] if isinstance(k, int | np.integer) else [int(x) for x in k]
    if not ks or any(x < 1 for x in ks) or len(set(ks)) != len(ks):
        raise ValueError(f"k must be a positive integer or distinct positive integers, got {k!r}.")
    check_positive_int(n_runs, "n_runs")
    check_positive_int(max_iter, "max_iter")
    check_positive("scale_factor", scale_factor)
    check_positive("sigma", sigma)
    with resolve(adata, layer=layer, use_raw=use_raw) as inp:
        dest = res.target(inp, copy=copy)
        act = activity_zscores(inp, key, activity).clip(lower=0.0)
        coords = coordinates(inp, spatial_key)
        i, j, d = _sp.neighbor_pairs(coords, radius)
        expr = protein_expression(inp, gene_symbols, list(act.columns), scale_factor)
    w = _sp.neighbor_weights(len(act), i, j, d, sigma=sigma)
    corr = correlation(act, expr, w)
    chosen_proteins = kept(corr, cor_cutoff, cor_padj_cutoff)
    logger.info(
        "%d/%d secreted proteins kept to infer signalling patterns.", len(chosen_proteins), act.shape[1]
    )
    if len(chosen_proteins) < max(ks):
        msg = (
            f"only {len(chosen_proteins)} secreted proteins pass the spatial correlation filter, fewer than "
            f"k={max(ks)}; lower k or relax cor_cutoff / cor_padj_cutoff."
        )
        raise ValueError(msg)
    v = act[chosen_proteins].to_numpy().T  # proteins x cells, as R
    sil: pd.DataFrame | None = None
    if len(ks) > 1:
        values = []
        for kk in ks:
            _, h = _sp.nmf(v, kk, seed=seed, n_runs=n_runs, max_iter=max_iter)
            values.append(_sp.silhouette_coef(h))
        chosen = _sp.choose_rank(ks, values)
        sil = pd.DataFrame({"k": ks, "silhouette": values})
        logger.info("The optimal number of factors k = %d", chosen)
    else:
        chosen = ks[0]
    wmat, hmat = _sp.nmf(v, chosen, seed=seed, n_runs=1, max_iter=max_iter)
    names = [str(x) for x in range(1, chosen + 1)]
    params = {
        "k": ks,
        "key": key,
        "radius": float(radius),
        "sigma": float(sigma),
        "layer": layer,
        "use_raw": inp.use_raw,
        "spatial_key": spatial_key,
        "scale_factor": float(scale_factor),
        "cor_cutoff": float(cor_cutoff),
        "cor_padj_cutoff": float(cor_padj_cutoff),
        "n_runs": int(n_runs),
        "seed": int(seed),
        "max_iter": int(max_iter),
    }
    entry: dict[str, Any] = {
        "loadings": pd.DataFrame(wmat, index=pd.Index(chosen_proteins, name="protein"), columns=names),
        "spatial_correlation": corr,
        "k": int(chosen),
        "params": res.clean_uns(params),
    }
    if sil is not None:
        entry["silhouette"] = sil
    patterns = pd.DataFrame(hmat.T, index=act.index, columns=names)
    return res.store(
        dest, "patterns", key_added, entry, obsm={key_added: patterns}, carry={spatial_key: coords}
    )
