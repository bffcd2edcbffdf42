"""Spatial downstream analyses: ``tl.ccc_spatial``, ``tl.signaling_patterns``, ``tl.signaling_velocity``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _results as res
from ..core import spatial as _sp
from ._common import gene_names, group_codes

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["ccc_spatial", "signaling_patterns", "signaling_velocity"]

logger = logging.getLogger("secact")

CORRELATION_COLUMNS = ("r", "pvalue", "padj")


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------
def _check_in_memory(adata) -> None:
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"adata must be an AnnData, got {type(adata).__name__}.")
    if adata.isbacked:
        msg = "spatial analyses need the data in memory; load it with adata = adata.to_memory()."
        raise ValueError(msg)


def _activity(adata: AnnData, key: str) -> pd.DataFrame:
    """Cells x proteins z-scores of a cell-level ``secact.tl.activity`` run."""
    name = res.obsm_key(key, "zscore")
    if name not in adata.obsm:
        msg = (
            f"adata.obsm[{name!r}] not found: run secact.tl.activity(adata, ..., method='analytic', "
            f"key_added={key!r}) first (per cell, without groupby and without out=)."
        )
        raise KeyError(msg)
    z = adata.obsm[name]
    if isinstance(z, pd.DataFrame):
        return z.astype(np.float64)
    proteins = res.entry(adata, key, "cells")["proteins"]
    return pd.DataFrame(np.asarray(z, dtype=np.float64), index=adata.obs_names, columns=list(proteins))


def _counts(adata: AnnData, layer: str | None, use_raw: bool | None, gene_symbols: str | None):
    """Counts (cells x genes, as stored) and gene names: scanpy's layer / use_raw rule."""
    if use_raw is None:
        use_raw = layer is None and adata.raw is not None
    if use_raw:
        if layer is not None:
            raise ValueError("use either layer= or use_raw=True, not both.")
        if adata.raw is None:
            raise ValueError("use_raw=True but adata.raw is None; pass use_raw=False or a layer.")
        return adata.raw.X, gene_names(adata.raw.var, gene_symbols)
    if layer is not None:
        if layer not in adata.layers:
            raise KeyError(f"layer={layer!r} not found; layers: {list(adata.layers)}.")
        return adata.layers[layer], gene_names(adata.var, gene_symbols)
    return adata.X, gene_names(adata.var, gene_symbols)


def _protein_expression(x, genes: pd.Index, proteins: Sequence[str], scale_factor: float) -> np.ndarray:
    """Log-normalised expression of each protein's gene (cells x proteins; NaN: no gene)."""
    x = sp.csr_matrix(x) if sp.issparse(x) else np.asarray(x)
    total = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    first = pd.Series(np.arange(len(genes)), index=genes)
    first = first[~first.index.duplicated(keep="first")]
    pos = first.reindex(list(proteins)).to_numpy()
    have = ~np.isnan(pos)
    out = np.full((x.shape[0], len(proteins)), np.nan)
    if have.any():
        cols = pos[have].astype(np.int64)
        sub = x[:, cols]
        if (sub.data if sp.issparse(sub) else np.asarray(sub)).min(initial=0) < 0:
            raise ValueError("expression has negative values; pass raw counts (layer= or use_raw=).")
        norm = _sp.log_normalize(sub, scale_factor, library_size=total)
        out[:, have] = norm.toarray() if sp.issparse(norm) else norm
    return out


def _coordinates(adata: AnnData, spatial_key: str) -> np.ndarray:
    if spatial_key not in adata.obsm:
        msg = f"adata.obsm[{spatial_key!r}] not found: cell coordinates (cells x 2) are needed."
        raise KeyError(msg)
    return np.asarray(adata.obsm[spatial_key], dtype=np.float64)[:, :2]


def _correlation(act: pd.DataFrame, expr: np.ndarray, w: sp.csr_matrix) -> pd.DataFrame:
    aggr = np.asarray(w.T @ np.nan_to_num(expr, nan=0.0))
    aggr[:, np.isnan(expr).any(axis=0)] = np.nan
    r, p, q = _sp.spatial_correlation(act.to_numpy(), aggr)
    return pd.DataFrame({"r": r, "pvalue": p, "padj": q}, index=pd.Index(act.columns, name="protein"))


def _kept(corr: pd.DataFrame, r_cutoff: float, padj_cutoff: float) -> list[str]:
    ok = corr["r"].notna() & (corr["r"] > r_cutoff) & (corr["padj"] < padj_cutoff)
    return list(corr.index[ok.to_numpy()])


def _check_fraction(name: str, value: float) -> None:
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}.")


# ----------------------------------------------------------------------------------------------
# cell-cell communication
# ----------------------------------------------------------------------------------------------
def ccc_spatial(
    adata: AnnData,
    groupby: str,
    *,
    radius: float = 20,
    key: str = "secact",
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    spatial_key: str = "spatial",
    scale_factor: float = 1000,
    n_background: int = 1000,
    seed: int = 0,
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

    Run ``secact.tl.activity(adata, ..., method="analytic")`` (per cell) first.

    Parameters
    ----------
    adata
        AnnData in memory with raw counts (``X``, ``layer`` or ``raw``), cell coordinates in
        ``obsm[spatial_key]`` and activity z-scores in ``obsm[f"{key}_zscore"]``.
    groupby
        Column of ``obs`` with cell types; cells without a label take no part.
    radius
        Neighbour distance cut-off, in the coordinates' unit (R: µm).
    key
        ``key_added`` of the activity run.
    layer, use_raw, gene_symbols
        Where the counts and gene symbols are (scanpy's rule: ``raw`` when present and no
        layer is given).
    spatial_key
        ``obsm`` key of the coordinates.
    scale_factor
        Counts per cell before ``log2(x + 1)`` (R: 1000 here).
    n_background
        Random background sets per type pair.
    seed
        Seed of the background draws (numpy ``Generator``): the same seed gives the same
        result. R's ``set.seed(123)`` draws are not reproduced, so p-values differ from R's
        by Monte-Carlo noise.
    ratio_cutoff, padj_cutoff
        R's ``ratio_cutoff`` and ``padj_cutoff``.
    cor_cutoff, cor_padj_cutoff
        Spatial correlation filter of step 1 (R: 0.05 and 0.01).
    key_added
        ``uns`` key of the results.
    copy
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` (or the copy) with ``adata.uns[key_added]`` = ``{"results": DataFrame,
    "spatial_correlation": DataFrame, "params": dict}``: ``results`` has the columns
    :data:`secact.core.spatial.CCC_COLUMNS` (one row per sender, protein and receiver),
    ``spatial_correlation`` the columns ``r``, ``pvalue``, ``padj`` per protein.
    """
    _check_in_memory(adata)
    res.check_key(key_added)
    if isinstance(n_background, bool) or not isinstance(n_background, int | np.integer) or n_background < 1:
        raise ValueError(f"n_background must be a positive integer, got {n_background!r}.")
    for name, value in (("ratio_cutoff", ratio_cutoff), ("padj_cutoff", padj_cutoff)):
        _check_fraction(name, value)
    if scale_factor <= 0:
        raise ValueError(f"scale_factor must be positive, got {scale_factor!r}.")
    codes, categories = group_codes(adata.obs, groupby)
    act = _activity(adata, key).clip(lower=0.0)
    counts, genes = _counts(adata, layer, use_raw, gene_symbols)
    expr = _protein_expression(counts, genes, list(act.columns), scale_factor)
    coords = _coordinates(adata, spatial_key)
    i, j, d = _sp.neighbor_pairs(coords, radius)
    w = _sp.neighbor_weights(adata.n_obs, i, j, d)

    corr = _correlation(act, expr, w)
    kept = _kept(corr, cor_cutoff, cor_padj_cutoff)
    logger.info("%d/%d secreted proteins kept to infer cell-cell communication.", len(kept), act.shape[1])
    cols = [act.columns.get_loc(p) for p in kept]
    rows = _sp.ccc_spatial(
        expr[:, cols],
        act.to_numpy()[:, cols],
        codes,
        categories,
        i,
        j,
        kept,
        n_background=int(n_background),
        seed=seed,
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
        "spatial_key": spatial_key,
        "scale_factor": float(scale_factor),
        "n_background": int(n_background),
        "seed": int(seed),
        "ratio_cutoff": float(ratio_cutoff),
        "padj_cutoff": float(padj_cutoff),
        "cor_cutoff": float(cor_cutoff),
        "cor_padj_cutoff": float(cor_padj_cutoff),
        "n_neighbor_pairs": int(i.size // 2),
    }
    target = adata.copy() if copy else adata
    target.uns[key_added] = {
        "results": table,
        "spatial_correlation": corr,
        "params": res.clean_uns(params),
    }
    return target if copy else None


# ----------------------------------------------------------------------------------------------
# signalling patterns
# ----------------------------------------------------------------------------------------------
def signaling_patterns(
    adata: AnnData,
    k: int | Sequence[int],
    *,
    key: str = "secact",
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
        AnnData in memory with raw counts, coordinates in ``obsm[spatial_key]`` and
        activity z-scores in ``obsm[f"{key}_zscore"]``
        (``secact.tl.activity(adata, ..., method="analytic")``).
    k
        Number of patterns, or several candidates (e.g. ``range(2, 9)``).
    key
        ``key_added`` of the activity run.
    radius, sigma
        Neighbourhood radius and Gaussian width (R: 200 and 100 µm, spot data).
    layer, use_raw, gene_symbols
        Where the counts and gene symbols are (scanpy's rule).
    spatial_key
        ``obsm`` key of the coordinates.
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
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` (or the copy) with ``adata.obsm[key_added]`` (cells x k DataFrame, columns
    ``"1"`` ... ``"k"``: R's ``signal.H`` transposed) and ``adata.uns[key_added]`` =
    ``{"loadings": proteins x k DataFrame (R's weight.W), "spatial_correlation": DataFrame,
    "k": int, "silhouette": DataFrame (when several k), "params": dict}``.
    """
    _check_in_memory(adata)
    res.check_key(key_added)
    ks = [int(k)] if isinstance(k, int | np.integer) else [int(x) for x in k]
    if not ks or any(x < 1 for x in ks) or len(set(ks)) != len(ks):
        raise ValueError(f"k must be a positive integer or distinct positive integers, got {k!r}.")
    if isinstance(n_runs, bool) or not isinstance(n_runs, int | np.integer) or n_runs < 1:
        raise ValueError(f"n_runs must be a positive integer, got {n_runs!r}.")
    if scale_factor <= 0 or sigma <= 0:
        raise ValueError("scale_factor and sigma must be positive.")
    act = _activity(adata, key).clip(lower=0.0)
    counts, genes = _counts(adata, layer, use_raw, gene_symbols)
    expr = _protein_expression(counts, genes, list(act.columns), scale_factor)
    i, j, d = _sp.neighbor_pairs(_coordinates(adata, spatial_key), radius)
    w = _sp.neighbor_weights(adata.n_obs, i, j, d, sigma=sigma)
    corr = _correlation(act, expr, w)
    kept = _kept(corr, cor_cutoff, cor_padj_cutoff)
    logger.info("%d/%d secreted proteins kept to infer signalling patterns.", len(kept), act.shape[1])
    if len(kept) < max(ks):
        msg = (
            f"only {len(kept)} secreted proteins pass the spatial correlation filter, fewer than "
            f"k={max(ks)}; lower k or relax cor_cutoff / cor_padj_cutoff."
        )
        raise ValueError(msg)
    v = act[kept].to_numpy().T  # proteins x cells, as R
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
        "spatial_key": spatial_key,
        "scale_factor": float(scale_factor),
        "cor_cutoff": float(cor_cutoff),
        "cor_padj_cutoff": float(cor_padj_cutoff),
        "n_runs": int(n_runs),
        "seed": int(seed),
        "max_iter": int(max_iter),
    }
    entry: dict[str, Any] = {
        "loadings": pd.DataFrame(wmat, index=pd.Index(kept, name="protein"), columns=names),
        "spatial_correlation": corr,
        "k": int(chosen),
        "params": res.clean_uns(params),
    }
    if sil is not None:
        entry["silhouette"] = sil
    target = adata.copy() if copy else adata
    target.obsm[key_added] = pd.DataFrame(hmat.T, index=target.obs_names, columns=names)
    target.uns[key_added] = entry
    return target if copy else None


# ----------------------------------------------------------------------------------------------
# signalling velocity
# ----------------------------------------------------------------------------------------------
def signaling_velocity(
    adata: AnnData,
    protein: str,
    *,
    mode: str = "receiving",
    radius: float = 200,
    sigma: float | None = 100,
    groupby: str | None = None,
    sender: str | Sequence[str] | None = None,
    receiver: str | Sequence[str] | None = None,
    key: str = "secact",
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    spatial_key: str = "spatial",
    scale_factor: float = 1e5,
    key_added: str = "secact_velocity",
    copy: bool = False,
) -> AnnData | None:
    """Signalling velocity of a secreted protein: where its signal flows, per cell or spot.

    SecAct R's ``SecAct.signaling.velocity.spotST``. Between neighbours ``i`` and ``j``
    within ``radius`` the flow from ``i`` to ``j`` is ``exp(-d^2 / (2 sigma^2))`` times the
    expression of the protein's gene in ``i`` (``log2(counts / total * scale_factor + 1)``)
    times the activity of the protein in ``j`` (z-score, negatives set to 0). A cell's
    vector has the length of its total flow and the direction of the flow-weighted mean of
    the unit vectors to its partners: towards the cells it reaches (``mode="sending"``) or
    from the cells that reach it (``mode="receiving"``); see
    :func:`secact.core.spatial.velocity`. With ``groupby``, ``sender`` and ``receiver``
    only those cell types send and receive (the pairs of R's
    ``SecAct.signaling.velocity.scST``; there ``sigma=None`` and ``radius=20``).

    Draw it with :func:`secact.pl.velocity`. Run ``secact.tl.activity(adata, ...,
    method="analytic")`` (per cell) first.

    Parameters
    ----------
    adata
        AnnData in memory with raw counts, coordinates in ``obsm[spatial_key]`` and the
        cell-level activity z-scores of the run ``key``.
    protein
        Secreted protein (a column of the activity; its name is its gene's symbol).
    mode
        ``"receiving"`` or ``"sending"``.
    radius
        Neighbour radius in the coordinates' unit (R: 200 µm for spots).
    sigma
        Width of the Gaussian distance weight (R: 100 µm); ``None``: weight 1.
    groupby
        Column of ``obs`` with cell types, for ``sender`` and ``receiver``.
    sender, receiver
        Cell type(s) allowed to send / receive (default: all cells).
    key
        ``key_added`` of the activity run.
    layer, use_raw, gene_symbols
        Where the counts and gene symbols are (scanpy's rule).
    spatial_key
        ``obsm`` key of the coordinates.
    scale_factor
        Counts per cell before ``log2(x + 1)`` (R: 1e5).
    key_added
        ``obsm`` and ``uns`` key of the result.
    copy
        Return a copy instead of writing to ``adata``.

    Returns
    -------
    ``None`` (or the copy) with ``adata.obsm[key_added]`` (cells x 2 vectors, the
    coordinates' unit times flow) and ``adata.uns[key_added]`` = ``{"protein", "mode",
    "params"}``.
    """
    _check_in_memory(adata)
    res.check_key(key_added)
    if mode not in ("receiving", "sending"):
        raise ValueError(f"mode must be 'receiving' or 'sending', got {mode!r}.")
    if scale_factor <= 0:
        raise ValueError(f"scale_factor must be positive, got {scale_factor!r}.")
    act = _activity(adata, key)
    protein = str(protein)
    if protein not in act.columns:
        msg = f"{protein!r} is not a protein of the activity run {key!r}; e.g. {list(act.columns[:5])}."
        raise KeyError(msg)
    counts, genes = _counts(adata, layer, use_raw, gene_symbols)
    expr = _protein_expression(counts, genes, [protein], scale_factor)[:, 0]
    if np.isnan(expr).all():
        raise KeyError(
            f"no gene {protein!r} in the data: the protein's gene symbol is needed (gene_symbols=?)."
        )
    masks = {}
    if sender is not None or receiver is not None:
        if groupby is None:
            raise ValueError("sender= and receiver= need groupby= (the obs column of cell types).")
        codes, categories = group_codes(adata.obs, groupby)
        names = np.asarray([str(c) for c in categories])
        for role, value in (("sender", sender), ("receiver", receiver)):
            if value is None:
                continue
            wanted = [value] if isinstance(value, str) else [str(v) for v in value]
            unknown = sorted(set(wanted) - set(names))
            if unknown:
                raise ValueError(f"{role} types {unknown} are not in obs[{groupby!r}]: {list(names)}.")
            masks[role] = (codes >= 0) & np.isin(names[np.maximum(codes, 0)], wanted)
    vec = _sp.velocity(
        _coordinates(adata, spatial_key),
        expr,
        act[protein].clip(lower=0.0).to_numpy(),
        radius,
        sigma=sigma,
        mode=mode,
        senders=masks.get("sender"),
        receivers=masks.get("receiver"),
    )
    params = {
        "radius": float(radius),
        "sigma": None if sigma is None else float(sigma),
        "groupby": groupby,
        "sender": sender if sender is None or isinstance(sender, str) else [str(s) for s in sender],
        "receiver": receiver if receiver is None or isinstance(receiver, str) else [str(r) for r in receiver],
        "key": key,
        "layer": layer,
        "spatial_key": spatial_key,
        "scale_factor": float(scale_factor),
    }
    target = adata.copy() if copy else adata
    target.obsm[key_added] = vec
    target.uns[key_added] = {"protein": protein, "mode": mode, "params": res.clean_uns(params)}
    return target if copy else None
