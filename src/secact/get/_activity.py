"""Activity results out of AnnData: one observations x proteins AnnData for every layout."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import h5py
import numpy as np
import pandas as pd

from .. import _results as res
from ._groups import protein_groups

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["activity", "activity_df"]


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
        or its path), or the groups x proteins AnnData returned for a path input. Paths may
        be ``.h5ad`` files or ``.zarr`` stores.
    key
        ``key_added`` of the run.
    stat
        Statistic put in ``X`` (``"beta"``, ``"se"``, ``"zscore"`` or ``"pvalue"``); the other
        kept statistics become layers.
    level
        ``"cells"`` or ``"groups"``; default: cells when present, else groups.

    Returns
    -------
    anndata.AnnData
        AnnData with ``obs`` = cells (their annotations, embeddings in ``obsm`` and ``uns``
        colours carried over) or groups (``obs["n_cells"]``), ``var`` = proteins, ``X`` = ``stat``,
        so ``sc.pl.umap(act, color="IFNG")`` and ``sc.pl.matrixplot`` work on it.

        ``var["group"]`` is the protein's signature group: with ``group_signatures=True`` SecAct
        merges near-identical signature columns (Pearson r > ``group_cor``) and reports the
        group's result for each member; members share the label (their names joined by ``"|"``,
        e.g. ``"IL1B|TNFA"``), a protein alone has its own name. The grouping is recomputed from
        the named signature of the run, as SecAct groups it; for a custom signature it
        is read off the stored values (members have identical values).
    """
    out = _activity(adata, key, stat, level)
    level_ = "cells" if "cells" in out.uns.get(key, {}) else "groups"
    entry = dict(out.uns.get(key, {}).get(level_, {}))
    if "group" not in out.var.columns:
        groups = protein_groups(entry.get("params", {}), out.var_names, values=lambda: _head(out.X))
        out.var["group"] = groups.to_numpy()
    entry["x"] = stat  # which statistic X holds, for a file written from this object
    out.uns[key] = {**out.uns[key], level_: entry}
    return out


def read_anndata(path: str | os.PathLike) -> AnnData:
    """The AnnData at ``path``: an ``.h5ad`` file or a ``.zarr`` store (a folder)."""
    import anndata as ad

    path = Path(os.path.expanduser(os.fspath(path)))
    if path.is_dir():
        from ..io._resolve import open_store

        with open_store(path):  # a one-line error unless an AnnData zarr store
            pass
        return ad.read_zarr(path)
    return ad.read_h5ad(path)


def _head(x, n: int = 256) -> np.ndarray:
    return res.dense(x[:n])


def _activity(adata, key: str, stat: str, level) -> AnnData:
    import anndata as ad

    if stat not in res.STATS:
        msg = f"stat must be one of {res.STATS}, got {stat!r}."
        raise ValueError(msg)
    if isinstance(adata, str | os.PathLike):
        adata = read_anndata(adata)
    found = adata.uns.get(key, {})
    if level is None:
        level = "cells" if "cells" in found else "groups"
    entry = res.entry(adata, key, level)
    if level == "groups":
        if "zscore" not in entry:  # already a groups x proteins result (tables live in X/layers)
            return _with_x(adata.copy(), stat, x_stat=str(entry.get("x", "zscore")))
        return _with_x(res.groups_anndata(key, entry), stat)
    stats = [str(s) for s in entry["stats"]]
    if stat not in stats:
        msg = f"the run kept only {stats}; {stat!r} was not stored (see stats= of secact.tl.activity)."
        raise KeyError(msg)
    proteins = pd.Index([str(p) for p in entry["proteins"]])
    if res.obsm_key(key, stats[0]) not in adata.obsm:
        x_stat = str(entry.get("x", res.x_stat(stats)))
        if adata.n_vars == len(proteins) and adata.var_names.equals(proteins):  # a sidecar itself
            return _with_x(adata.to_memory() if adata.isbacked else adata.copy(), stat, x_stat=x_stat)
        return _from_sidecar(adata, key, entry, stat, x_stat)
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


def _from_sidecar(adata: AnnData, key: str, entry: dict, stat: str, x_stat: str) -> AnnData:
    """The results of a run on ``adata`` that went to a sidecar (``out=``), read from that
    file, with ``adata``'s embeddings and colours carried over."""
    import anndata as ad

    out = entry.get("out")
    if not out or not os.path.isfile(out):
        msg = (
            f"the cell-level results of {key!r} were written to a sidecar file ({out!r}) that is "
            "not there now; pass the sidecar's path (or the AnnData read from it) instead."
        )
        raise FileNotFoundError(msg)
    side = ad.read_h5ad(out)
    if not side.obs_names.equals(adata.obs_names):
        msg = (
            f"the sidecar {out!r} holds other cells than this AnnData (the file was replaced or "
            "the AnnData subset); pass the sidecar's path instead."
        )
        raise ValueError(msg)
    side.obs = adata.obs.copy()
    for k, v in adata.obsm.items():
        side.obsm[k] = v
    for k, v in adata.uns.items():
        if k.endswith("_colors") or k == "spatial":
            side.uns[k] = v
    return _with_x(side, stat, x_stat=x_stat)


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


def _kept_stats(adata: AnnData, key: str, level: str) -> list[str]:
    entry = res.entry(adata, key, level)
    if level == "cells":
        return [str(s) for s in entry["stats"]]
    if "zscore" in entry:
        return [s for s in res.STATS if s in entry]
    return [s for s in res.STATS if s == "zscore" or s in adata.layers]  # a groups x proteins file


def bh_rows(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values along each row (NaN stays NaN, not counted)."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim == 1:
        return bh_rows(p[None, :])[0]
    missing = np.isnan(p)
    m = (~missing).sum(axis=1, keepdims=True)
    order = np.argsort(np.where(missing, np.inf, p), axis=1, kind="stable")
    ranked = np.take_along_axis(np.where(missing, np.inf, p), order, axis=1)
    q = ranked * m / np.arange(1, p.shape[1] + 1)
    q = np.minimum.accumulate(q[:, ::-1], axis=1)[:, ::-1]
    out = np.empty_like(q)
    np.put_along_axis(out, order, np.minimum(q, 1.0), axis=1)
    out[missing] = np.nan
    return out


def activity_df(
    adata: AnnData | str | os.PathLike,
    key: str = "secact",
    *,
    level: Literal["cells", "groups"] | None = None,
    observations: Sequence[str] | None = None,
    proteins: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Activity results as a tidy table, one row per observation and protein, most significant first.

    Parameters
    ----------
    adata
        What :func:`activity` accepts.
    key
        ``key_added`` of the run.
    level
        ``"cells"`` or ``"groups"``; default: cells when present, else groups.
    observations
        Only these cells or groups (default: all; cell-level tables grow as cells x proteins).
    proteins
        Only these proteins (default: all).

    Returns
    -------
    pandas.DataFrame
        DataFrame with columns ``observation``, ``protein``, ``group`` (the signature group, see
        :func:`~secact.get.activity`) and the statistics the run kept among ``beta``, ``se``, ``zscore``,
        ``pvalue``, plus ``fdr`` (with ``pvalue``): Benjamini-Hochberg within each observation,
        counting each signature group once (members share one test). Rows are sorted by
        ``pvalue`` ascending, then ``|zscore|`` descending (stable otherwise).
    """

    if isinstance(adata, str | os.PathLike):
        adata = read_anndata(adata)
    if level is None:
        level = "cells" if "cells" in adata.uns.get(key, {}) else "groups"
    stats = _kept_stats(adata, key, level)
    first = res.x_stat(stats)
    act = activity(adata, key, stat=first, level=level)
    if observations is not None:
        act = act[_checked(act.obs_names, observations, "observations")]
    if proteins is not None:
        act = act[:, _checked(act.var_names, proteins, "proteins")]
    tables = {s: res.dense(act.X if s == first else act.layers[s]) for s in stats}
    n_obs, n_prot = act.shape
    groups = act.var["group"].astype(str).to_numpy()
    cols: dict[str, object] = {
        "observation": pd.Categorical(np.repeat(act.obs_names.to_numpy(), n_prot), categories=act.obs_names),
        "protein": pd.Categorical(np.tile(act.var_names.to_numpy(), n_obs), categories=act.var_names),
        "group": pd.Categorical(np.tile(groups, n_obs), categories=pd.unique(groups)),
    }
    for s in stats:
        cols[s] = tables[s].reshape(-1)
    if "pvalue" in tables:
        _, first_member, inverse = np.unique(groups, return_index=True, return_inverse=True)
        cols["fdr"] = bh_rows(tables["pvalue"][:, first_member])[:, inverse].reshape(-1)
    df = pd.DataFrame(cols)
    keys = []
    if "zscore" in df:
        keys.append(-np.abs(df["zscore"].to_numpy()))
    if "pvalue" in df:
        keys.append(df["pvalue"].to_numpy())
    if keys:  # lexsort: last key is the primary one; NaN sorts last
        df = df.iloc[np.lexsort(keys)].reset_index(drop=True)
    return df


def _checked(index: pd.Index, wanted: Sequence[str], what: str) -> list[str]:
    wanted = [wanted] if isinstance(wanted, str) else [str(w) for w in wanted]
    missing = [w for w in wanted if w not in index]
    if missing:
        msg = f"{what} not in the results: {missing[:5]}; available e.g. {list(index[:5])}."
        raise KeyError(msg)
    return wanted


# ----------------------------------------------------------------------------------------------
# z-scores of a cell-level run, read without loading anything else (for the spatial tools)
# ----------------------------------------------------------------------------------------------
def zscores(data: AnnData | str | os.PathLike, key: str = "secact", *, hint: str = "") -> pd.DataFrame:
    """Cells x proteins z-scores of a cell-level :func:`secact.tl.activity` run.

    Only the z-scores (and the cell and protein names) are read: an ``.h5ad`` path or a
    backed AnnData is never loaded whole.

    Parameters
    ----------
    data
        An AnnData holding the run (``obsm[key + "_zscore"]``, or ``uns[key]["cells"]["out"]``
        naming its sidecar), a sidecar (an AnnData or its path), the AnnData of
        :func:`activity`, or an ``.h5ad`` / ``.zarr`` path holding the run in ``obsm``.
    key
        ``key_added`` of the run.
    hint
        Added to the error when no cell-level z-scores are found (what else the caller takes).
    """
    from anndata import AnnData

    if isinstance(data, AnnData):
        return _zscores_of(_InMemory(data), key, hint)
    if isinstance(data, str | os.PathLike):
        path = Path(data).expanduser()
        if not path.exists():
            msg = f"{os.fspath(path)!r} does not exist: no activity sidecar, .h5ad file or .zarr store there.{hint}"
            raise FileNotFoundError(msg)
        from ..io._resolve import open_store

        with open_store(path) as f:
            return _zscores_of(_OnDisk(f, os.fspath(path)), key, hint)
    msg = f"expected an AnnData or an .h5ad / .zarr path with activity results, got {type(data).__name__}.{hint}"
    raise TypeError(msg)


class _InMemory:
    """What :func:`zscores` reads, from an AnnData (in memory or backed)."""

    def __init__(self, adata: AnnData) -> None:
        self.adata = adata
        self.where = "the AnnData"

    def obsm(self, name: str):
        return self.adata.obsm[name] if name in self.adata.obsm else None

    def uns(self, key: str):
        return self.adata.uns.get(key)

    def obs_names(self) -> pd.Index:
        return pd.Index(self.adata.obs_names)

    def var_names(self) -> pd.Index:
        return pd.Index(self.adata.var_names)

    def matrix(self, name: str):
        if name == "X":
            return self.adata.X
        return self.adata.layers[name] if name in self.adata.layers else None


class _OnDisk:
    """What :func:`zscores` reads, element by element from an open ``.h5ad`` or ``.zarr`` store."""

    def __init__(self, f, path: str) -> None:
        self.f = f
        self.where = repr(path)

    def _elem(self, *where: str):
        from anndata.io import read_elem

        from ..io._resolve import is_group

        node = self.f
        for name in where:
            if not is_group(node) or name not in node:
                return None
            node = node[name]
        return read_elem(node)

    def obsm(self, name: str):
        return self._elem("obsm", name)

    def uns(self, key: str):
        return self._elem("uns", key)

    def _index(self, group: str) -> pd.Index:
        from anndata.io import read_elem

        node = self.f[group]
        return pd.Index(read_elem(node[node.attrs["_index"]]))

    def obs_names(self) -> pd.Index:
        return self._index("obs")

    def var_names(self) -> pd.Index:
        return self._index("var")

    def matrix(self, name: str):
        return self._elem("X") if name == "X" else self._elem("layers", name)


def _zscores_of(src, key: str, hint: str, depth: int = 0) -> pd.DataFrame:
    name = res.obsm_key(key, "zscore")
    z = src.obsm(name)
    found = src.uns(key)
    cells = found.get("cells") if res.kind_of(found) == "activity" else None
    if z is not None:
        if isinstance(z, pd.DataFrame):
            return z
        if not isinstance(cells, Mapping) or "proteins" not in cells:
            msg = f"the protein names of obsm[{name!r}] are not in uns[{key!r}]['cells'] of {src.where}."
            raise KeyError(msg)
        proteins = [str(p) for p in cells["proteins"]]
        return pd.DataFrame(res.dense(z), index=src.obs_names(), columns=proteins)
    if not isinstance(cells, Mapping):
        msg = (
            f"no cell-level activity in {src.where}: neither obsm[{name!r}] nor uns[{key!r}]['cells']. "
            f"Run secact.tl.activity(adata, ..., method='analytic', key_added={key!r}) first (per "
            f"cell, without groupby).{hint}"
        )
        raise KeyError(msg)
    stats = [str(s) for s in cells["stats"]]
    if "zscore" not in stats:
        msg = f"the activity run {key!r} in {src.where} kept only {stats}; z-scores are needed."
        raise KeyError(msg)
    proteins = pd.Index([str(p) for p in cells["proteins"]])
    if src.var_names().astype(str).equals(proteins):  # a sidecar (or a get.activity AnnData) itself
        x = str(cells.get("x", res.x_stat(stats)))
        values = src.matrix("X" if x == "zscore" else "zscore")
        if values is None:
            raise KeyError(f"{src.where} holds no z-scores (stats: {stats}).")
        return pd.DataFrame(res.dense(values), index=src.obs_names(), columns=proteins)
    out = cells.get("out")
    if out is None or depth:
        msg = (
            f"the cell-level results of {key!r} in {src.where} are neither in obsm[{name!r}] nor in "
            f"a sidecar. Run secact.tl.activity(adata, ..., method='analytic', key_added={key!r}) "
            f"again (per cell, without groupby).{hint}"
        )
        raise KeyError(msg)
    if not os.path.isfile(out):
        msg = (
            f"the cell-level results of {key!r} were written to a sidecar file ({out!r}) that is "
            f"not there now.{hint}"
        )
        raise FileNotFoundError(msg)
    with h5py.File(out, "r") as f:
        return _zscores_of(_OnDisk(f, os.fspath(out)), key, hint, depth + 1)
