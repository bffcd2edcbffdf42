"""What the spatial tools share: activity z-scores, coordinates, protein expression, the
spatial correlation filter (``tl.ccc_spatial``, ``tl.signaling_patterns``, ``tl.signaling_velocity``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._settings import settings
from ..core import runner
from ..core import spatial as _sp
from ..get._activity import zscores
from ._common import gene_names

if TYPE_CHECKING:
    from ..io import Resolved

__all__ = [
    "CORRELATION_COLUMNS",
    "activity_zscores",
    "coordinates",
    "correlation",
    "kept",
    "protein_expression",
]

CORRELATION_COLUMNS = ("r", "pvalue", "padj")

_PASS_ACTIVITY = " Or pass activity=<its sidecar, an AnnData of activity results or a cells x proteins DataFrame of z-scores>."


def activity_zscores(inp: Resolved, key: str, activity) -> pd.DataFrame:
    """Cells x proteins z-scores of a cell-level ``secact.tl.activity`` run, in the input's cell order.

    ``activity=None``: the run stored with the input (``obsm[f"{key}_zscore"]``, of the file
    for a path, or the sidecar recorded in ``uns[key]["cells"]["out"]``). Otherwise a
    DataFrame of z-scores, an AnnData of results (sidecar or ``secact.get.activity``) or a
    sidecar path, all read by :func:`secact.get._activity.zscores`.
    """
    from anndata import AnnData

    if activity is None:
        z = zscores(inp.adata if inp.adata is not None else inp.path, key, hint=_PASS_ACTIVITY)
    elif isinstance(activity, pd.DataFrame):
        z = activity
    elif isinstance(activity, AnnData | str | os.PathLike):
        where = "" if isinstance(activity, AnnData) else " (activity=: the sidecar written with out=)"
        z = zscores(activity, key, hint=where)
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


def protein_expression(
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


def coordinates(inp: Resolved, spatial_key: str) -> np.ndarray:
    """Cells x 2 coordinates of ``obsm[spatial_key]`` (read alone from a path's file)."""
    if inp.adata is not None:
        xy = inp.adata.obsm.get(spatial_key)
    elif inp.path is None:  # a SOMA input: no obsm
        xy = None
    else:
        from anndata.io import read_elem

        from ..io._resolve import open_store

        with open_store(inp.path) as f:  # .h5ad or .zarr
            node = f["obsm"] if "obsm" in f else None
            xy = read_elem(node[spatial_key]) if node is not None and spatial_key in node else None
    if xy is None:
        msg = f"obsm[{spatial_key!r}] not found: cell coordinates (cells x 2) are needed."
        raise KeyError(msg)
    return np.asarray(xy, dtype=np.float64)[:, :2]


def correlation(act: pd.DataFrame, expr: np.ndarray, w: sp.csr_matrix) -> pd.DataFrame:
    """Spearman r of each protein's activity with its neighbours' weighted expression (BH ``padj``)."""
    aggr = np.asarray(w.T @ np.nan_to_num(expr, nan=0.0))
    aggr[:, np.isnan(expr).any(axis=0)] = np.nan
    r, p, q = _sp.spatial_correlation(act.to_numpy(), aggr)
    return pd.DataFrame({"r": r, "pvalue": p, "padj": q}, index=pd.Index(act.columns, name="protein"))


def kept(corr: pd.DataFrame, r_cutoff: float, padj_cutoff: float) -> list[str]:
    """Proteins passing the spatial correlation filter."""
    ok = corr["r"].notna() & (corr["r"] > r_cutoff) & (corr["padj"] < padj_cutoff)
    return list(corr.index[ok.to_numpy()])


def check_nonnegative(name: str, value: float) -> None:
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}.")


def check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
