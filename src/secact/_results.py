"""The one result schema: where every tool stores its results and every reader finds them.

Activity (observations x proteins everywhere on AnnData)

``adata.uns[key]`` is a dict with one entry per level, so cell-level and group-level runs
under the same key live side by side:

``adata.uns[key]["cells"]``
    ``params`` (dict), ``proteins`` and ``stats`` (string arrays), ``dtype``; with a sidecar
    also ``out`` (its path). The values are in ``adata.obsm[f"{key}_{stat}"]`` (cells x
    proteins DataFrames, or dask arrays for dask input) — or in the sidecar.
``adata.uns[key]["groups"]``
    ``params``, ``groupby``, ``n_cells`` (int array, one per group) and one groups x proteins
    DataFrame per statistic (``beta``, ``se``, ``zscore``, ``pvalue``).

A sidecar ``.h5ad`` (cell level streamed to disk) is an AnnData of cells x proteins: ``X`` =
``zscore`` (or the first kept statistic), the other statistics as layers, ``obs`` = the cells'
annotations, ``uns[key]["cells"]`` as above. Group results of a path input come back as the
same kind of AnnData (groups x proteins, ``obs["n_cells"]``, ``uns[key]["groups"]``).

The bulk :class:`secact.ActivityResult` keeps SecAct R's proteins x samples tables (what R's
``SecAct.activity.inference`` returns and what users compare with R); its
:meth:`~secact.ActivityResult.to_anndata` gives the samples x proteins AnnData above.

Differential expression: ``adata.uns[key] = {"results": DataFrame, "params": dict}`` with the
columns :data:`DE_COLUMNS`.

Everything stored is writable by anndata (``clean_uns`` makes ``uns`` entries so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "DE_COLUMNS",
    "LEVELS",
    "STATS",
    "check_stats",
    "clean_uns",
    "obsm_key",
    "x_stat",
]

#: The activity statistics, in their canonical order.
STATS = ("beta", "se", "zscore", "pvalue")
#: The levels of activity results under ``uns[key]``.
LEVELS = ("cells", "groups")
#: The columns of a differential expression results table.
DE_COLUMNS = (
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
)


def check_stats(stats: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validate a ``stats=`` choice; returns the statistics in the canonical order."""
    if stats is None:
        return STATS
    wanted = [stats] if isinstance(stats, str) else list(stats)
    bad = [s for s in wanted if s not in STATS]
    if bad or not wanted:
        msg = f"stats must be a non-empty subset of {STATS}, got {stats!r}."
        raise ValueError(msg)
    return tuple(s for s in STATS if s in wanted)


def check_dtype(dtype) -> np.dtype:
    """Validate a storage ``dtype=`` (float64 or float32)."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        msg = f"dtype must be 'float64' or 'float32', got {dtype!r}."
        raise ValueError(msg) from err
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        msg = f"dtype must be 'float64' or 'float32', got {dtype!r}."
        raise ValueError(msg)
    return dt


def obsm_key(key: str, stat: str) -> str:
    """``obsm`` key of a cell-level statistic."""
    return f"{key}_{stat}"


def x_stat(stats: Sequence[str]) -> str:
    """The statistic stored as ``X`` of a result AnnData: ``zscore`` if kept, else the first."""
    return "zscore" if "zscore" in stats else stats[0]


def check_key(key: str) -> str:
    """A ``key_added`` that anndata can write (a non-empty string without ``/``)."""
    if not isinstance(key, str) or not key.strip() or "/" in key or key in (".", ".."):
        msg = f"key_added must be a non-empty string without '/' (and not '.' or '..'), got {key!r}."
        raise ValueError(msg)
    return key


def clean_uns(value: Any, where: str = "uns") -> Any:
    """Make ``value`` storable in h5ad: drop ``None`` dict values, paths -> str, check lists.

    Lists stay lists (anndata writes lists of strings or of numbers; they read back as
    arrays); a list holding ``None`` or mixed kinds is an error.
    """
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"uns keys must be strings; got {k!r} in {where}")
            if v is None:  # h5ad cannot store None: an absent key means None
                continue
            out[k] = clean_uns(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, list | tuple):
        if any(v is None for v in value):
            raise ValueError(f"{where} contains None, which h5ad cannot store")
        if all(isinstance(v, str) for v in value) or all(
            isinstance(v, bool | int | float | np.number | np.bool_) for v in value
        ):
            return list(value)
        raise TypeError(f"{where}: lists must hold only strings or only numbers")
    if isinstance(value, Path):
        return str(value)
    return value


# ----------------------------------------------------------------------------------------------
# activity entries
# ----------------------------------------------------------------------------------------------
def cells_entry(params: dict, proteins: Sequence[str], stats: Sequence[str], dtype, out=None) -> dict:
    """``uns[key]["cells"]`` of a cell-level run."""
    return clean_uns(
        {
            "params": params,
            "proteins": [str(p) for p in proteins],
            "stats": list(stats),
            "dtype": np.dtype(dtype).name,
            "out": out,
        }
    )


def groups_entry(params: dict, groupby: str, tables: Mapping[str, pd.DataFrame], n_cells) -> dict:
    """``uns[key]["groups"]`` of a group-level run (tables: groups x proteins)."""
    entry = clean_uns({"params": params, "groupby": groupby})
    entry["n_cells"] = np.asarray(n_cells, dtype=np.int64)
    entry.update({k: tables[k] for k in STATS if k in tables})
    return entry


def store(adata: AnnData, key: str, level: str, entry: dict) -> None:
    """Put a level's entry under ``adata.uns[key]`` without touching the other level."""
    current = adata.uns.get(key)
    if not isinstance(current, Mapping) or not set(current) <= set(LEVELS):
        current = {}  # a foreign or legacy value under this key is replaced
    adata.uns[key] = {**dict(current), level: entry}


def entry(adata: AnnData, key: str, level: str) -> dict:
    """The stored entry of ``level`` (``"cells"`` / ``"groups"``) with a clear error if absent."""
    uns = getattr(adata, "uns", None)
    found = uns.get(key) if uns is not None else None
    if not isinstance(found, Mapping) or level not in found:
        run = "secact.tl.activity(adata, groupby=...)" if level == "groups" else "secact.tl.activity(adata)"
        msg = f"adata.uns[{key!r}] holds no {level[:-1]}-level activity results; run {run} (key_added={key!r}) first."
        raise KeyError(msg)
    return found[level]


def groups_anndata(key: str, entry_: dict) -> AnnData:
    """Groups x proteins AnnData from a group-level entry (``X`` = zscore, other stats as layers)."""
    import anndata as ad

    z = entry_["zscore"]
    obs = pd.DataFrame({"n_cells": np.asarray(entry_["n_cells"])}, index=z.index.astype(str))
    obs.index.name = None
    layers = {k: entry_[k].to_numpy() for k in STATS if k != "zscore" and k in entry_}
    out = ad.AnnData(X=z.to_numpy(), obs=obs, var=pd.DataFrame(index=z.columns.astype(str)), layers=layers)
    out.uns[key] = {"groups": {k: v for k, v in entry_.items() if k not in STATS}}
    return out
