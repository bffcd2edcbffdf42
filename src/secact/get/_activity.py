"""Activity results out of AnnData: one observations x proteins AnnData for every layout."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

import pandas as pd

from .. import _results as res

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["activity"]


def activity(
    adata: AnnData | str | os.PathLike,
    key: str = "secact",
    *,
    stat: str = "zscore",
    level: Literal["cells", "groups"] | None = None,
) -> AnnData:
    """Activity results of :func:`secact.tl.activity` as an observations x proteins AnnData.

    Parameters
    ----------
    adata
        The AnnData the results were stored in, a sidecar written with ``out=`` (an AnnData
        or its path), or the groups x proteins AnnData returned for a path input.
    key
        ``key_added`` of the run.
    stat
        Statistic put in ``X`` (``"beta"``, ``"se"``, ``"zscore"`` or ``"pvalue"``); the other
        kept statistics become layers.
    level
        ``"cells"`` or ``"groups"``; default: cells when present, else groups.

    Returns
    -------
    AnnData with ``obs`` = cells (their annotations, embeddings in ``obsm`` and ``uns``
    colours carried over) or groups (``obs["n_cells"]``), ``var`` = proteins, ``X`` = ``stat``,
    so ``sc.pl.umap(act, color="IFNG")`` and ``sc.pl.matrixplot`` work on it.
    """
    import anndata as ad

    if stat not in res.STATS:
        msg = f"stat must be one of {res.STATS}, got {stat!r}."
        raise ValueError(msg)
    if isinstance(adata, str | os.PathLike):
        adata = ad.read_h5ad(adata)
    found = adata.uns.get(key, {})
    if level is None:
        level = "cells" if "cells" in found else "groups"
    entry = res.entry(adata, key, level)
    if level == "groups":
        if "zscore" not in entry:  # already a groups x proteins result (tables live in X/layers)
            out = adata.copy()
        else:
            out = res.groups_anndata(key, entry)
        return _with_x(out, stat)
    stats = [str(s) for s in entry["stats"]]
    if stat not in stats:
        msg = f"the run kept only {stats}; {stat!r} was not stored (see stats= of secact.tl.activity)."
        raise KeyError(msg)
    proteins = pd.Index([str(p) for p in entry["proteins"]])
    if res.obsm_key(key, stats[0]) not in adata.obsm:  # a sidecar / result file
        return _with_x(adata.copy(), stat, x_stat=res.x_stat(stats))
    layers = {k: _values(adata.obsm[res.obsm_key(key, k)]) for k in stats if k != stat}
    obsm = {k: v for k, v in adata.obsm.items() if not k.startswith(f"{key}_")}
    uns = {k: v for k, v in adata.uns.items() if k.endswith("_colors") or k == "spatial"}
    uns[key] = {"cells": entry}
    return ad.AnnData(
        X=_values(adata.obsm[res.obsm_key(key, stat)]),
        obs=adata.obs.copy(),
        var=pd.DataFrame(index=proteins),
        layers=layers,
        obsm=obsm,
        uns=uns,
    )


def _values(x):
    return x.to_numpy() if isinstance(x, pd.DataFrame) else x


def _with_x(adata: AnnData, stat: str, x_stat: str = "zscore") -> AnnData:
    """Swap ``stat`` into ``X`` (the statistic in ``X`` moves to the layers)."""
    if stat == x_stat:
        return adata
    if stat not in adata.layers:
        msg = f"{stat!r} is not among the stored statistics."
        raise KeyError(msg)
    x = adata.X
    adata.X = adata.layers.pop(stat)
    adata.layers[x_stat] = x
    return adata
