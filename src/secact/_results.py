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

Every other tool's entry is listed in :data:`RESULTS` (tool, reader in :mod:`secact.get`,
default key, the entries of ``uns[key]`` and what ``obsm[key]`` holds):

============ ========================= ======================= ==========
kind         tool                      reader                  ``uns[key]`` (and ``obsm[key]``)
============ ========================= ======================= ==========
activity     ``tl.activity``           ``get.activity``        ``cells`` / ``groups`` (above)
differential ``tl.differential``       ``get.differential``    ``results``, ``params``
rank         ``tl.rank_activities``    ``get.rank_activities`` ``results``, ``params``
ccc          ``tl.ccc``                ``get.ccc``             ``links``, ``expression``, ``activity``,
                                                               ``cell_types``, ``params``
ccc_spatial  ``tl.ccc_spatial``        ``get.ccc``             ``links``, ``spatial_correlation``, ``params``
patterns     ``tl.signaling_patterns`` ``get.patterns``        ``loadings``, ``spatial_correlation``, ``k``,
                                                               ``params`` (``silhouette``); obsm: cells x k
                                                               weights
velocity     ``tl.signaling_velocity`` ``get.velocity``        ``protein``, ``mode``, ``params``;
                                                               obsm: cells x 2 vectors
============ ========================= ======================= ==========

Tools on bulk tables (:data:`TABLE_TOOLS`, e.g. ``tl.coxph``: a cohort's activity and its
clinical table) store nothing: they return a tidy DataFrame, one row per protein.

Files written before the CCC tables were named alike hold the ``tl.ccc_spatial`` table
under ``"results"``; :func:`secact.get.ccc` reads both.

Where results go (``target`` picks the object, ``store`` writes it), the same rule
for every tool:

- an AnnData in memory, or opened with ``backed="r"`` (results live in its ``uns`` /
  ``obsm`` in memory, like its ``obs``; save them with ``adata.write_h5ad(path)``):
  written in place, the tool returns ``None``;
- ``copy=True``: a copy of an in-memory AnnData receives them and is returned (a backed
  AnnData cannot be copied: an error);
- an ``.h5ad`` path (never modified): a new AnnData with the file's observations (``obs``,
  no ``X``) receives them and is returned; read them with :mod:`secact.get` as from any
  AnnData. ``tl.activity`` with ``groupby`` returns its groups x proteins AnnData instead
  (what :func:`secact.get.activity` gives, and what it writes to ``out=``);
- a view of a backed AnnData cannot hold results (an error saying to load it with
  ``.to_memory()``), except for cell-level ``tl.activity`` with ``out=``: the sidecar holds
  them and ``None`` is returned.

Everything stored is writable by anndata (``clean_uns`` makes ``uns`` entries so).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "DE_COLUMNS",
    "LEVELS",
    "RESULTS",
    "STATS",
    "TABLE_TOOLS",
    "Kind",
    "Target",
    "check_stats",
    "clean_uns",
    "dense",
    "describe_keys",
    "kind_of",
    "obsm_key",
    "result_keys",
    "store",
    "target",
    "x_stat",
]

logger = logging.getLogger("secact")

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


def dense(x) -> np.ndarray:
    """A stored matrix (numpy, DataFrame, sparse, dask, h5py dataset, backed sparse) as a
    float64 array."""
    import h5py
    import scipy.sparse as sp

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


def _merge_level(adata: AnnData, key: str, level: str, entry: dict) -> None:
    """Put a level's entry under ``adata.uns[key]`` without touching the other level."""
    current = adata.uns.get(key)
    if kind_of(current) != "activity":
        current = {}  # a foreign or legacy value under this key is replaced
    adata.uns[key] = {**dict(current), level: entry}


def entry(adata: AnnData, key: str, level: str) -> dict:
    """The stored entry of ``level`` (``"cells"`` / ``"groups"``) with a clear error if absent."""
    uns = getattr(adata, "uns", None)
    found = uns.get(key) if uns is not None else None
    kind = kind_of(found)
    if kind != "activity":
        held = "is not there" if found is None else f"holds {kind or 'no secact'} results"
        msg = (
            f"no activity results under key {key!r} (adata.uns[{key!r}] {held}); "
            f"{describe_keys(adata)}. Run secact.tl.activity(adata, ..., key_added={key!r}) first, "
            "or pass the key of an activity run."
        )
        raise KeyError(msg)
    if level not in found:
        run = "secact.tl.activity(adata, groupby=...)" if level == "groups" else "secact.tl.activity(adata)"
        other = next(lv for lv in LEVELS if lv != level)
        msg = (
            f"adata.uns[{key!r}] holds {other[:-1]}-level activity results only, no "
            f"{level[:-1]}-level ones; pass level={other!r} or run {run} (key_added={key!r}) first."
        )
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


# ----------------------------------------------------------------------------------------------
# the registry of stored results
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """One tool's stored result: who writes it, who reads it, and its layout."""

    tool: str
    """The :mod:`secact.tl` function that writes it."""
    reader: str
    """The :mod:`secact.get` function that reads it."""
    key_added: str
    """The tool's default ``key_added``."""
    uns: tuple[str, ...]
    """Entries of ``uns[key]`` that are always there (``()``: activity, see the module text)."""
    obsm: str | None = None
    """What ``obsm[key]`` holds, if the tool writes one."""


#: Every tool's stored result by kind, each a :class:`Kind` (tool, reader, default key, layout).
RESULTS: dict[str, Kind] = {
    "activity": Kind("secact.tl.activity", "secact.get.activity", "secact", ()),
    "differential": Kind(
        "secact.tl.differential", "secact.get.differential", "secact_de", ("results", "params")
    ),
    "rank": Kind(
        "secact.tl.rank_activities", "secact.get.rank_activities", "secact_rank", ("results", "params")
    ),
    "ccc": Kind(
        "secact.tl.ccc",
        "secact.get.ccc",
        "secact_ccc",
        ("links", "expression", "activity", "cell_types", "params"),
    ),
    "ccc_spatial": Kind(
        "secact.tl.ccc_spatial",
        "secact.get.ccc",
        "secact_ccc_spatial",
        ("links", "spatial_correlation", "params"),
    ),
    "patterns": Kind(
        "secact.tl.signaling_patterns",
        "secact.get.patterns",
        "secact_patterns",
        ("loadings", "spatial_correlation", "k", "params"),
        obsm="cells x k DataFrame of pattern weights",
    ),
    "velocity": Kind(
        "secact.tl.signaling_velocity",
        "secact.get.velocity",
        "secact_velocity",
        ("protein", "mode", "params"),
        obsm="cells x 2 array of signalling vectors",
    ),
}


#: Tools that take bulk tables and return a DataFrame (nothing stored, not in :data:`RESULTS`).
TABLE_TOOLS: tuple[str, ...] = ("secact.tl.coxph",)


def kind_of(value: Any) -> str | None:
    """Which tool's result ``value`` (an ``uns`` entry) is, by its layout; ``None``: not one."""
    if not isinstance(value, Mapping) or not value:
        return None
    keys = set(value)
    if keys <= set(LEVELS):
        return "activity"
    if "results" in keys and "spatial_correlation" in keys and "params" in keys:
        return "ccc_spatial"  # written before the table was named "links"
    if {"results", "params"} <= keys and isinstance(value["results"], pd.DataFrame):
        columns = value["results"].columns
        if "gene" in columns:
            return "differential"
        if "protein" in columns:
            return "rank"
        return None
    for name, kind in RESULTS.items():
        if kind.uns and set(kind.uns) <= keys and name not in ("differential", "rank"):
            return name
    return None


def result_keys(adata: Any) -> dict[str, str]:
    """``uns`` keys of ``adata`` that hold secact results, with their kind (see :data:`RESULTS`)."""
    uns = getattr(adata, "uns", None)
    if uns is None:
        return {}
    found = {}
    for key in uns:
        kind = kind_of(uns[key])
        if kind is not None:
            found[str(key)] = kind
    return found


def describe_keys(adata: Any) -> str:
    """'keys with secact results: ...' (for error messages)."""
    keys = result_keys(adata)
    if not keys:
        return "no key of adata.uns holds secact results"
    return "keys with secact results: " + ", ".join(f"{k!r} ({v})" for k, v in keys.items())


def missing(adata: Any, key: str, kind: str) -> KeyError | ValueError | TypeError | None:
    """The error for ``adata.uns[key]`` when it is not a ``kind`` result (``None``: it is)."""
    uns = getattr(adata, "uns", None)
    spec = RESULTS[kind]
    if uns is None:
        return TypeError(f"expected an AnnData with {spec.tool} results, got {type(adata).__name__}.")
    found = kind_of(uns.get(key))
    if (
        found == kind
        or (kind == "ccc" and found == "ccc_spatial")
        or (kind == "ccc_spatial" and found == "ccc")
    ):
        return None
    if key not in uns:
        msg = f"adata.uns has no {key!r} ({describe_keys(adata)}); run {spec.tool}(adata, ..., key_added={key!r}) first."
        return KeyError(msg)
    what = f"a {found} result" if found else "not a secact result"
    msg = f"adata.uns[{key!r}] is {what}, not a {spec.tool} result; {describe_keys(adata)}."
    return ValueError(msg)


# ----------------------------------------------------------------------------------------------
# where results go
# ----------------------------------------------------------------------------------------------
@dataclass
class Target:
    """The object that receives a tool's results (see the module text for the rule)."""

    adata: AnnData | None
    """Written to; ``None``: a new AnnData of ``obs`` (a path input), or nothing (a sidecar)."""
    obs: pd.DataFrame | None = None
    """The observations of a path input."""
    returned: bool = False
    """Whether the tool returns the object (``copy=True`` or a path input)."""

    @property
    def is_new(self) -> bool:
        """A path input: results go to a new AnnData."""
        return self.adata is None and self.obs is not None


def target(data: Any, *, copy: bool, sidecar: bool | None = None, obs: pd.DataFrame | None = None) -> Target:
    """Pick the object that receives results; errors before anything is computed.

    Parameters
    ----------
    data
        The tool's input: an AnnData, or what :func:`secact.io.resolve` made of it (an AnnData
        or an ``.h5ad`` path).
    copy
        The tool's ``copy=``.
    sidecar
        ``None``: the tool writes no sidecar. ``True``: results go to a sidecar file
        (cell-level ``tl.activity`` with ``out=``), so a view of a backed AnnData is accepted
        (nothing is stored in it); ``False``: they could (the error says so).
    obs
        The observations of an ``.h5ad`` path given as such (a tool that reads it through
        :mod:`secact.get` rather than :func:`secact.io.resolve`).
    """
    import os

    from anndata import AnnData

    if isinstance(data, str | os.PathLike):
        adata = None
    else:
        adata = data if isinstance(data, AnnData) else data.adata
    if adata is None:
        if copy:
            msg = (
                "copy=True needs an AnnData; a path input is never modified (the results are "
                "returned in a new AnnData)."
            )
            raise ValueError(msg)
        found = obs if obs is not None else getattr(data, "obs", None)
        if found is None:
            raise ValueError("the observations of a path input are needed (obs=).")
        return Target(None, obs=found.copy(), returned=True)
    if copy:
        if adata.isbacked:
            msg = (
                "copy=True cannot hold the results of a backed AnnData: run on the backed AnnData "
                "itself (results go to its obsm / uns in memory), or load it with .to_memory()."
            )
            raise ValueError(msg)
        return Target(adata.copy(), returned=True)
    if adata.isbacked and adata.is_view:
        if sidecar:
            return Target(None)
        extra = (
            " or pass out='results.h5ad' (the results then go to that sidecar)" if sidecar is False else ""
        )
        msg = (
            "a view of a backed AnnData cannot hold results: run on the backed AnnData itself "
            f"(results go to its obsm / uns in memory), load the subset with .to_memory(){extra}."
        )
        raise ValueError(msg)
    return Target(adata)


def store(
    dest: Target,
    kind: str,
    key: str,
    entry: Mapping,
    *,
    level: str | None = None,
    obsm: Mapping[str, Any] | None = None,
    carry: Mapping[str, Any] | None = None,
) -> AnnData | None:
    """Write a tool's results to ``dest``, log where they went, return what the tool returns.

    Parameters
    ----------
    dest
        What :func:`target` picked.
    kind
        A key of :data:`RESULTS`.
    key
        The tool's ``key_added``.
    entry
        ``uns[key]`` (for activity: the ``level`` entry, merged with the other level).
    level
        ``"cells"`` / ``"groups"`` for activity.
    obsm
        ``obsm`` entries of the result.
    carry
        ``obsm`` entries a new AnnData (path input) also gets, e.g. the coordinates that
        :mod:`secact.pl` draws the results on.

    Returns
    -------
    anndata.AnnData or None
        The AnnData that holds the results when ``dest.returned`` (``copy=True``, a path
        input), else ``None``.
    """
    if kind not in RESULTS:
        raise ValueError(f"unknown result kind {kind!r}; one of {list(RESULTS)}.")
    adata = dest.adata
    if adata is None:
        if dest.obs is None:  # a sidecar holds everything
            return None
        import anndata as ad

        adata = ad.AnnData(obs=dest.obs)
        for name, value in (carry or {}).items():
            adata.obsm[name] = value
    where = f"adata.uns[{key!r}]"
    if kind == "activity":
        if level not in LEVELS:
            raise ValueError(f"activity results need level in {LEVELS}, got {level!r}.")
        _merge_level(adata, key, level, dict(entry))
        where += f"[{level!r}]"
    else:
        adata.uns[key] = dict(entry)
    for name, value in (obsm or {}).items():
        adata.obsm[name] = value
        where += f", adata.obsm[{name!r}]"
    logger.info("%s: added %s", RESULTS[kind].tool, where)
    return adata if dest.returned else None
