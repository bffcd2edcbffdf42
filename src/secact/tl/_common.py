"""What the AnnData tools share: labels, gene names, reference masks, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._checks import DuplicateSymbolsError, check_positive_int
from .._errors import ParamError, param_error
from ..io._atomic import atomic_path
from ..pp._symbols import looks_like_ensembl

if TYPE_CHECKING:
    from anndata import AnnData


__all__ = [
    "check_batch_size",
    "gene_names",
    "group_codes",
    "reference_mask",
    "write_atomic",
]


def check_batch_size(batch_size) -> None:
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")


def group_codes(obs: pd.DataFrame, groupby: str) -> tuple[np.ndarray, list[Any]]:
    """Codes (-1: no label) and categories of ``obs[groupby]``; unused categories are kept."""
    if groupby not in obs.columns:
        msg = "{groupby=} is not a column of obs; columns: {columns}."
        raise param_error(KeyError, msg, groupby=groupby, columns=list(obs.columns))
    col = obs[groupby]
    categorical = col.array if isinstance(col.dtype, pd.CategoricalDtype) else pd.Categorical(col)
    return np.asarray(categorical.codes, dtype=np.int64), list(categorical.categories)


def gene_names(var: pd.DataFrame, gene_symbols: str | None) -> pd.Index:
    """Gene symbols of ``var`` (its index, or a column), refusing Ensembl ids."""
    if gene_symbols is not None:
        if gene_symbols not in var.columns:
            msg = "{gene_symbols=} is not a column of var; columns: {columns}."
            raise param_error(KeyError, msg, gene_symbols=gene_symbols, columns=list(var.columns))
        return pd.Index(var[gene_symbols].astype(str))
    names = pd.Index(var.index.astype(str))
    if looks_like_ensembl(names):
        msg = (
            "var_names look like Ensembl ids; SecAct signatures use gene symbols. Pass "
            "{gene_symbols=...}: the var column with symbols (e.g. 'gene_symbols' or 'feature_name')."
        )
        raise ParamError(msg)
    return names


def reference_mask(obs: pd.DataFrame, reference) -> np.ndarray | None:
    """Cell weights (0/1) of a reference given as a boolean mask or ``(column, value)``."""
    if reference is None:
        return None
    if isinstance(reference, tuple) and len(reference) == 2:
        column, value = reference
        if column not in obs.columns:
            msg = f"reference column {column!r} is not in obs; columns: {list(obs.columns)}."
            raise KeyError(msg)
        mask = (obs[column] == value).to_numpy(dtype=bool)
        if not mask.any():
            msg = f"no cell has obs[{column!r}] == {value!r}; the reference is empty."
            raise ValueError(msg)
    else:
        if isinstance(reference, pd.Series):  # aligned by cell name, as pandas users expect
            foreign = reference.index.difference(obs.index)
            if len(foreign) or not reference.index.is_unique:
                what = (
                    f"labels not in obs_names, e.g. {list(foreign[:3])}"
                    if len(foreign)
                    else "duplicated labels"
                )
                msg = f"the reference Series has {what}; index it by the cells' names (obs_names)."
                raise ValueError(msg)
            reference = reference.reindex(obs.index, fill_value=False)
        mask = np.asarray(reference)
        if mask.dtype != bool or mask.shape != (len(obs),):
            msg = (
                "reference must be a boolean mask over cells (length n_obs) or a (column, value) "
                f"pair; got {type(reference).__name__} of shape {getattr(mask, 'shape', None)}."
            )
            raise ValueError(msg)
        if not mask.any():
            msg = "the reference mask selects no cell."
            raise ValueError(msg)
    return mask.astype(np.float64)


def write_atomic(adata: AnnData, path: str | os.PathLike) -> Path:
    """Write ``adata`` to ``path`` through a temporary file in the same folder (never half-written)."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return Path(path)


def check_input(input: str, groupby, reference, flavor: str) -> None:
    """``input`` and ``flavor`` of ``tl.activity`` (and their combination with a reference)."""
    if input not in ("counts", "log", "differential"):
        msg = f"input must be 'counts', 'log' or 'differential', got {input!r}."
        raise ValueError(msg)
    if input == "differential" and groupby is None and reference is not None:
        msg = "{input='differential'} is used as it is: a reference has no effect; drop {reference=...}."
        raise ParamError(msg)
    if flavor not in ("single-cell", "spatial"):
        msg = f"flavor must be 'single-cell' or 'spatial', got {flavor!r}."
        raise ValueError(msg)


def check_scale_factor(scale_factor) -> float:
    """The per-cell scale factor as a float (default 1e5, SecAct R's)."""
    if isinstance(scale_factor, bool | np.bool_) or not isinstance(
        scale_factor, int | float | np.number | None
    ):
        msg = f"scale_factor must be a number (e.g. 1e5), got {scale_factor!r}."
        raise TypeError(msg)
    sf = 1e5 if scale_factor is None else float(scale_factor)
    if not (np.isfinite(sf) and sf > 0):
        msg = f"scale_factor must be a finite number > 0, got {scale_factor!r}."
        raise ValueError(msg)
    return sf


def mapped_genes(source, names, organism: str, map_symbols: bool, *, batch: int, progress):
    """Gene symbols mapped as SecAct R's ``transferSymbol``; duplicated symbols are resolved
    by R's ``rm_duplicates`` (keep the largest total), with one pass over the data for the
    totals only when there are duplicates."""
    from ..core import pipeline
    from ..pp._symbols import gene_map

    try:
        return gene_map(names, organism=organism, map_symbols=map_symbols)
    except DuplicateSymbolsError:
        pass
    totals = pipeline.column_totals(source, batch_size=batch, progress=progress)
    return gene_map(names, organism=organism, map_symbols=map_symbols, totals=totals)
