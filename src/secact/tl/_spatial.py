"""Spatial downstream analyses: ``tl.ccc_spatial``, ``tl.signaling_patterns``, ``tl.signaling_velocity``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _results as res
from .._settings import settings
from ..core import runner
from ..core import spatial as _sp
from ..io import resolve
from ._common import gene_names, group_codes

if TYPE_CHECKING:
    from anndata import AnnData

    from ..io import Resolved

__all__ = ["ccc_spatial", "signaling_patterns", "signaling_velocity"]

logger = logging.getLogger("secact")

CORRELATION_COLUMNS = ("r", "pvalue", "padj")


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------
def _target(inp: Resolved, copy: bool) -> AnnData | None:
    """The AnnData that receives the results (``None``: a path input, results returned)."""
    adata = inp.adata
    if adata is None:
        if copy:
            raise ValueError(
                "copy=True needs an AnnData; a path input is never modified (results are returned)."
            )
        return None
    if adata.isbacked and (copy or adata.is_view):
        what = "copy=True" if copy else "a view of a backed AnnData"
        msg = (
            f"{what} cannot hold the results: run on the backed AnnData itself (results go to its "
            "obsm / uns in memory), or load the subset with .to_memory()."
        )
        raise ValueError(msg)
    return adata.copy() if copy else adata


def _h5_elem(path, *where: str):
    """``read_elem`` of ``path``'s element at ``where`` (e.g. ``"obsm", "spatial"``), or ``None``."""
    import h5py
    from anndata.io import read_elem

    with h5py.File(path, "r") as f:
        node = f
        for name in where:
            if not isinstance(node, h5py.Group) or name not in node:
                return None
            node = node[name]
        return read_elem(node)


def _sidecar(path, key: str) -> pd.DataFrame:
    """Cells x proteins z-scores of a sidecar ``.h5ad`` (``tl.activity(..., out=path)``)."""
    import h5py
    from anndata.io import read_elem

    path = Path(path).expanduser()
    if not path.is_file():
        msg = (
            f"the activity sidecar {os.fspath(path)!r} does not exist; pass activity=<the sidecar "
            "written with out=, as an AnnData or its path>."
        )
        raise FileNotFoundError(msg)
    with h5py.File(path, "r") as f:
        entry = read_elem(f["uns"][key]).get("cells") if "uns" in f and key in f["uns"] else None
        if not isinstance(entry, Mapping):
            msg = (
                f"{os.fspath(path)!r} holds no cell-level activity under key {key!r} (uns[{key!r}]['cells'])."
            )
            raise KeyError(msg)
        stats = [str(s) for s in entry["stats"]]
        if "zscore" not in stats:
            msg = f"the activity run in {os.fspath(path)!r} kept only {stats}; z-scores are needed."
            raise KeyError(msg)
        x = str(entry.get("x", res.x_stat(stats)))
        values = read_elem(f["X"] if x == "zscore" else f["layers"]["zscore"])
        obs_names = read_elem(f["obs"]).index
        proteins = read_elem(f["var"]).index
    return pd.DataFrame(_dense(values), index=obs_names, columns=proteins.astype(str))


def _dense(x) -> np.ndarray:
    """A stored matrix (numpy, sparse, dask, h5py dataset, backed sparse) as a float64 array."""
    import h5py

    if hasattr(x, "compute"):  # dask
        x = x.compute()
    if isinstance(x, pd.DataFrame):
        x = x.to_numpy()
    elif isinstance(x, h5py.Dataset):
        x = x[()]
    elif hasattr(x, "to_memory"):  # a backed sparse matrix
        x = x.to_memory()
    if sp.issparse(x):
        x = x.toarray()
    return np.asarray(x, dtype=np.float64)


def _from_result(adata: AnnData, key: str) -> pd.DataFrame:
    """Z-scores of an AnnData holding activity results: in obsm, or a cells x proteins result."""
    name = res.obsm_key(key, "zscore")
    if name in adata.obsm:
        return _from_obsm(adata.obsm[name], adata.obs_names, adata.uns.get(key), key)
    entry = adata.uns.get(key, {}).get("cells") if isinstance(adata.uns.get(key), Mapping) else None
    if not isinstance(entry, Mapping):
        msg = (
            f"the activity AnnData has neither obsm[{name!r}] nor cell-level results under "
            f"uns[{key!r}]; pass the AnnData of secact.tl.activity (key_added={key!r}), its "
            "sidecar or secact.get.activity(...)."
        )
        raise KeyError(msg)
    stats = [str(s) for s in entry["stats"]]
    x = str(entry.get("x", res.x_stat(stats)))
    if x == "zscore":
        values = adata.X
    elif "zscore" in adata.layers:
        values = adata.layers["zscore"]
    else:
        raise KeyError(f"the activity AnnData holds no z-scores (stats: {stats}).")
    return pd.DataFrame(_dense(values), index=adata.obs_names, columns=adata.var_names.astype(str))


def _from_obsm(z, obs_names: pd.Index, found, key: str) -> pd.DataFrame:
    if isinstance(z, pd.DataFrame):
        return z
    cells = found.get("cells") if isinstance(found, Mapping) else None
    if not isinstance(cells, Mapping) or "proteins" not in cells:
        msg = f"the protein names of obsm[{res.obsm_key(key, 'zscore')!r}] are not in uns[{key!r}]['cells']."
        raise KeyError(msg)
    return pd.DataFrame(_dense(z), index=obs_names, columns=[str(p) for p in cells["proteins"]])


def _activity(inp: Resolved, key: str, activity) -> pd.DataFrame:
    """Cells x proteins z-scores of a cell-level ``secact.tl.activity`` run, in the input's cell order.

    ``activity=None``: ``obsm[f"{key}_zscore"]`` of the input (of the file for a path), else
    the sidecar recorded in ``uns[key]["cells"]["out"]``. Otherwise a DataFrame of
    z-scores, an AnnData of results (sidecar or ``secact.get.activity``) or a sidecar path.
    """
    from anndata import AnnData

    if activity is None:
        name = res.obsm_key(key, "zscore")
        if inp.adata is not None:
            z, found = inp.adata.obsm.get(name), inp.adata.uns.get(key)
        else:
            z, found = _h5_elem(inp.path, "obsm", name), _h5_elem(inp.path, "uns", key)
        cells = found.get("cells") if isinstance(found, Mapping) else None
        if z is not None:
            z = _from_obsm(z, inp.obs_names, found, key)
        elif isinstance(cells, Mapping) and "out" in cells:
            z = _sidecar(cells["out"], key)
        else:
            msg = (
                f"no cell-level activity: obsm[{name!r}] not found. Run secact.tl.activity(adata, ..., "
                f"method='analytic', key_added={key!r}) first (per cell, without groupby), or pass "
                "activity=<its sidecar or a cells x proteins DataFrame of z-scores>."
            )
            raise KeyError(msg)
    elif isinstance(activity, pd.DataFrame):
        z = activity
    elif isinstance(activity, AnnData):
        z = _from_result(activity, key)
    elif isinstance(activity, str | os.PathLike):
        z = _sidecar(activity, key)
    else:
        msg = (
            "activity must be a cells x proteins DataFrame of z-scores, an AnnData of activity "
            f"results or the path of a sidecar .h5ad, got {type(activity).__name__}."
        )
        raise TypeError(msg)
    z = z.set_axis(z.index.astype(str), axis=0).set_axis(z.columns.astype(str), axis=1)
    names = pd.Index(inp.obs_names.astype(str))
    if not z.index.equals(names):
        missing = names.difference(z.index)
        if len(missing) or not z.index.is_unique:
            what = (
                f"has no row for cells {list(missing[:3])}" if len(missing) else "has duplicated cell names"
            )
            msg = f"the activity {what}; it must hold one row per cell of the data (by obs_names)."
            raise ValueError(msg)
        z = z.loc[names]
    return z.set_axis(inp.obs_names, axis=0).astype(np.float64)


def _protein_expression(
    inp: Resolved, gene_symbols: str | None, proteins: Sequence[str], scale_factor: float
) -> np.ndarray:
    """Log-normalised expression of each protein's gene (cells x proteins; NaN: no gene).

    One pass over the cells through the runner: every block's library sizes (all genes) and
    its columns of the proteins' genes (the first of duplicated names).
    """
    genes = gene_names(inp.var, gene_symbols)
    first = pd.Series(np.arange(len(genes)), index=genes)
    first = first[~first.index.duplicated(keep="first")]
    pos = first.reindex(list(proteins)).to_numpy()
    have = ~np.isnan(pos)
    out = np.full((inp.n_obs, len(proteins)), np.nan)
    if not have.any():
        return out
    source = inp.source()
    where = np.flatnonzero(have)

    def sink(a: int, b: int, part: np.ndarray) -> None:
        out[a:b, where] = part

    runner.run(
        source.row_blocks(settings.batch_size, None),
        _sp.GeneExpression(pos[have].astype(np.int64), float(scale_factor)),
        sink,
        executor=source.executor,
        progress=None,
        total=source.n_obs,
        desc="secact expression",
    )
    return out


def _coordinates(inp: Resolved, spatial_key: str) -> np.ndarray:
    if inp.adata is not None:
        xy = inp.adata.obsm.get(spatial_key)
    else:
        xy = _h5_elem(inp.path, "obsm", spatial_key)
    if xy is None:
        msg = f"obsm[{spatial_key!r}] not found: cell coordinates (cells x 2) are needed."
        raise KeyError(msg)
    return np.asarray(xy, dtype=np.float64)[:, :2]


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
    seed: int = 0,
    ratio_cutoff: float = 0.2,
    padj_cutoff: float = 0.01,
    cor_cutoff: float = 0.05,
    cor_padj_cutoff: float = 0.01,
    key_added: str = "secact_ccc_spatial",
    copy: bool = False,
) -> AnnData | dict | None:
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
    key
        ``key_added`` of the activity run.
    activity
        Cell-level activity z-scores, when they are not in ``obsm`` of ``adata`` (``None``:
        ``obsm[key + "_zscore"]`` of the AnnData, or of the file for a path; for a run with
        ``out=``, the sidecar it recorded). Otherwise the sidecar written by
        ``secact.tl.activity(..., out=...)`` (an AnnData or its path), the AnnData of
        :func:`secact.get.activity`, or a cells x proteins DataFrame; rows are matched to
        the cells by ``obs_names``.
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
        Return a copy instead of writing to ``adata`` (in-memory AnnData only).

    Returns
    -------
    anndata.AnnData or dict or None
        ``None`` (results in ``adata.uns[key_added]``; a backed AnnData holds them in
        memory, like its ``obs``), the copy with ``copy=True``, or the results dict for a
        path input. The results (writable by anndata) are a dict:

        ``"results"``
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
    if isinstance(n_background, bool) or not isinstance(n_background, int | np.integer) or n_background < 1:
        raise ValueError(f"n_background must be a positive integer, got {n_background!r}.")
    for name, value in (("ratio_cutoff", ratio_cutoff), ("padj_cutoff", padj_cutoff)):
        _check_fraction(name, value)
    if scale_factor <= 0:
        raise ValueError(f"scale_factor must be positive, got {scale_factor!r}.")
    with resolve(adata, layer=layer, use_raw=use_raw) as inp:
        target = _target(inp, copy)
        codes, categories = group_codes(inp.obs, groupby)
        act = _activity(inp, key, activity).clip(lower=0.0)
        coords = _coordinates(inp, spatial_key)
        i, j, d = _sp.neighbor_pairs(coords, radius)
        expr = _protein_expression(inp, gene_symbols, list(act.columns), scale_factor)
    w = _sp.neighbor_weights(len(coords), i, j, d)

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
        "use_raw": inp.use_raw,
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
    entry = {"results": table, "spatial_correlation": corr, "params": res.clean_uns(params)}
    if target is None:
        return entry
    target.uns[key_added] = entry
    return target if copy else None


# ----------------------------------------------------------------------------------------------
# signalling patterns
# ----------------------------------------------------------------------------------------------
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
) -> AnnData | dict | None:
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
    key
        ``key_added`` of the activity run.
    activity
        Cell-level activity z-scores, when they are not in ``obsm`` of ``adata`` (``None``:
        ``obsm[key + "_zscore"]`` of the AnnData, or of the file for a path; for a run with
        ``out=``, the sidecar it recorded). Otherwise the sidecar written by
        ``secact.tl.activity(..., out=...)`` (an AnnData or its path), the AnnData of
        :func:`secact.get.activity`, or a cells x proteins DataFrame; rows are matched to
        the cells by ``obs_names``.
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
        Return a copy instead of writing to ``adata`` (in-memory AnnData only).

    Returns
    -------
    anndata.AnnData or dict or None
        ``None`` (results in ``adata``), the copy with ``copy=True``, or for a path input a
        dict of the ``uns`` entry below plus ``"patterns"`` (what would go to ``obsm``).

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
    if isinstance(n_runs, bool) or not isinstance(n_runs, int | np.integer) or n_runs < 1:
        raise ValueError(f"n_runs must be a positive integer, got {n_runs!r}.")
    if scale_factor <= 0 or sigma <= 0:
        raise ValueError("scale_factor and sigma must be positive.")
    with resolve(adata, layer=layer, use_raw=use_raw) as inp:
        target = _target(inp, copy)
        act = _activity(inp, key, activity).clip(lower=0.0)
        i, j, d = _sp.neighbor_pairs(_coordinates(inp, spatial_key), radius)
        expr = _protein_expression(inp, gene_symbols, list(act.columns), scale_factor)
    w = _sp.neighbor_weights(len(act), i, j, d, sigma=sigma)
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
        "loadings": pd.DataFrame(wmat, index=pd.Index(kept, name="protein"), columns=names),
        "spatial_correlation": corr,
        "k": int(chosen),
        "params": res.clean_uns(params),
    }
    if sil is not None:
        entry["silhouette"] = sil
    patterns = pd.DataFrame(hmat.T, index=act.index, columns=names)
    if target is None:
        return {"patterns": patterns, **entry}
    target.obsm[key_added] = patterns
    target.uns[key_added] = entry
    return target if copy else None


# ----------------------------------------------------------------------------------------------
# signalling velocity
# ----------------------------------------------------------------------------------------------
def signaling_velocity(
    adata: AnnData | str | os.PathLike,
    protein: str,
    *,
    mode: str = "receiving",
    radius: float = 200,
    sigma: float | None = 100,
    groupby: str | None = None,
    sender: str | Sequence[str] | None = None,
    receiver: str | Sequence[str] | None = None,
    key: str = "secact",
    activity: pd.DataFrame | AnnData | str | os.PathLike | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    spatial_key: str = "spatial",
    scale_factor: float = 1e5,
    key_added: str = "secact_velocity",
    copy: bool = False,
) -> AnnData | dict | None:
    """Signalling velocity of a secreted protein: where its signal flows, per cell or spot.

    SecAct R's ``SecAct.signaling.velocity.spotST``. Between neighbours ``i`` and ``j``
    within ``radius`` the flow from ``i`` to ``j`` is ``exp(-d^2 / (2 sigma^2))`` times the
    expression of the protein's gene in ``i`` (``log2(counts / total * scale_factor + 1)``)
    times the activity of the protein in ``j`` (z-score, negatives set to 0). A cell's
    vector has the length of its total flow and the direction of the flow-weighted mean of
    the unit vectors to its partners: towards the cells it reaches (``mode="sending"``) or
    from the cells that reach it (``mode="receiving"``); see
    ``secact.core.spatial.velocity``. With ``groupby``, ``sender`` and ``receiver``
    only those cell types send and receive (the pairs of R's
    ``SecAct.signaling.velocity.scST``; there ``sigma=None`` and ``radius=20``).

    Draw it with :func:`secact.pl.velocity`. Run ``secact.tl.activity(adata, ...,
    method="analytic")`` (per cell) first.

    Parameters
    ----------
    adata
        Spatial data with raw counts and coordinates in ``obsm[spatial_key]``: an AnnData in
        memory, opened with ``backed="r"``, or an ``.h5ad`` path (the counts are read block
        by block; only the protein's gene and each cell's total are kept).
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
    activity
        Cell-level activity z-scores, when they are not in ``obsm`` of ``adata`` (``None``:
        ``obsm[key + "_zscore"]`` of the AnnData, or of the file for a path; for a run with
        ``out=``, the sidecar it recorded). Otherwise the sidecar written by
        ``secact.tl.activity(..., out=...)`` (an AnnData or its path), the AnnData of
        :func:`secact.get.activity`, or a cells x proteins DataFrame; rows are matched to
        the cells by ``obs_names``.
    layer, use_raw, gene_symbols
        Where the counts and gene symbols are (scanpy's rule).
    spatial_key
        ``obsm`` key of the coordinates.
    scale_factor
        Counts per cell before ``log2(x + 1)`` (R: 1e5).
    key_added
        ``obsm`` and ``uns`` key of the result.
    copy
        Return a copy instead of writing to ``adata`` (in-memory AnnData only).

    Returns
    -------
    anndata.AnnData or dict or None
        ``None`` (results in ``adata``), the copy with ``copy=True``, or for a path input a
        dict of the ``uns`` entry below plus ``"vectors"`` (what would go to ``obsm``).

        ``adata.obsm[key_added]``
            Cells x 2 array of vectors (the coordinates' unit times flow).
        ``adata.uns[key_added]``
            A dict with ``"protein"``, ``"mode"`` and ``"params"``.
    """
    res.check_key(key_added)
    if mode not in ("receiving", "sending"):
        raise ValueError(f"mode must be 'receiving' or 'sending', got {mode!r}.")
    if scale_factor <= 0:
        raise ValueError(f"scale_factor must be positive, got {scale_factor!r}.")
    with resolve(adata, layer=layer, use_raw=use_raw) as inp:
        target = _target(inp, copy)
        act = _activity(inp, key, activity)
        protein = str(protein)
        if protein not in act.columns:
            msg = f"{protein!r} is not a protein of the activity run {key!r}; e.g. {list(act.columns[:5])}."
            raise KeyError(msg)
        masks = _type_masks(inp.obs, groupby, sender, receiver)
        coords = _coordinates(inp, spatial_key)
        expr = _protein_expression(inp, gene_symbols, [protein], scale_factor)[:, 0]
    if np.isnan(expr).all():
        raise KeyError(
            f"no gene {protein!r} in the data: the protein's gene symbol is needed (gene_symbols=?)."
        )
    vec = _sp.velocity(
        coords,
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
        "use_raw": inp.use_raw,
        "spatial_key": spatial_key,
        "scale_factor": float(scale_factor),
    }
    entry = {"protein": protein, "mode": mode, "params": res.clean_uns(params)}
    if target is None:
        return {"vectors": vec, **entry}
    target.obsm[key_added] = vec
    target.uns[key_added] = entry
    return target if copy else None


def _type_masks(obs: pd.DataFrame, groupby: str | None, sender, receiver) -> dict[str, np.ndarray]:
    """Boolean cell masks of the allowed sender / receiver types (only those given)."""
    masks: dict[str, np.ndarray] = {}
    if sender is None and receiver is None:
        return masks
    if groupby is None:
        raise ValueError("sender= and receiver= need groupby= (the obs column of cell types).")
    codes, categories = group_codes(obs, groupby)
    names = np.asarray([str(c) for c in categories])
    for role, value in (("sender", sender), ("receiver", receiver)):
        if value is None:
            continue
        wanted = [value] if isinstance(value, str) else [str(v) for v in value]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(f"{role} types {unknown} are not in obs[{groupby!r}]: {list(names)}.")
        masks[role] = (codes >= 0) & np.isin(names[np.maximum(codes, 0)], wanted)
    return masks
