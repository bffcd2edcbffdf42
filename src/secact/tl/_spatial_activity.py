"""``flavor="spatial"`` of :func:`secact.tl.activity`: SecAct R's ``SecAct.activity.inference.ST``.

What differs from the single-cell pipeline, in R's order:

1. genes whose total count over all spots is 0 are dropped first (``rowSums(expr) > 0``),
   before mouse → human mapping, alias mapping and duplicate resolution; this changes the gene
   set, hence the scaling of the response and the permutation null;
2. with a control sample (R's ``inputProfile_control``) the control goes through the same
   steps on its own, the sample keeps only the genes the control also has (in the sample's
   order) and is centred on the control's gene means.

Everything else (per-spot scaling to ``scale_factor``, ``log2(x + 1)``, inference) is the
cell-level pipeline. This module only plans genes and computes the control's centre; the
passes over the data are :mod:`secact.core.pipeline`'s.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._checks import EmptyLibraryWarning
from .._errors import ParamError
from .._logging import elapsed, hint, logger
from ..core import pipeline
from ..io import resolve
from ..pp._symbols import GeneMap, gene_map
from ._common import gene_names

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["SpatialGenes", "check_spatial", "control_centre", "control_files", "spatial_genes"]


def expressed_gene_map(
    source,
    names: pd.Index,
    *,
    organism: Literal["human", "mouse"],
    map_symbols: bool,
    batch: int,
    progress: bool | None,
    what: str = "data",
) -> tuple[GeneMap, int]:
    """The gene map of R's ST pipeline over all of ``source``'s genes, and how many genes were
    dropped for having no counts (one pass over the data: each gene's total)."""
    t0 = time.perf_counter()
    totals = pipeline.column_totals(source, batch_size=batch, progress=progress)
    keep = np.flatnonzero(totals > 0)  # R: expr[Matrix::rowSums(expr) > 0, ]
    if keep.size == 0:
        msg = f"no gene of the {what} has counts (every gene's total is 0); pass the raw counts (layer=/use_raw=)."
        raise ValueError(msg)
    inner = gene_map(names[keep], organism=organism, map_symbols=map_symbols, totals=totals[keep])
    select = sp.csc_matrix((np.ones(keep.size), (keep, np.arange(keep.size))), shape=(len(names), keep.size))
    matrix = sp.csc_matrix(select @ inner.matrix)
    matrix.sort_indices()
    n_zero = len(names) - keep.size
    logger.info(
        "flavor='spatial': gene totals of %s spots (%s) in %s; %s of %s genes have no counts and are dropped",
        f"{source.n_obs:,}",
        what,
        elapsed(t0),
        f"{n_zero:,}",
        f"{len(names):,}",
    )
    return GeneMap(symbols=inner.symbols, matrix=matrix), n_zero


@dataclass(eq=False)
class SpatialGenes:
    """The genes of a spatial run.

    Attributes
    ----------
    gmap
        The sample's input genes -> its symbols (genes without counts dropped, mapped as R).
    used
        Positions in ``gmap.symbols`` of the genes inference may use: all of them, or those the
        control also has (sample order).
    n_zero
        Sample genes dropped for having no counts.
    control_source, control_gmap
        The control's block source and gene map (``None`` without a control).
    """

    gmap: GeneMap
    used: np.ndarray
    n_zero: int
    control_source: object | None = None
    control_gmap: GeneMap | None = None

    def params(self, control) -> dict:
        """What the run records: genes dropped for having no counts, and the control."""
        out: dict = {"n_genes_zero": self.n_zero}
        if control is not None:
            out["control"] = os.fspath(control) if isinstance(control, str | os.PathLike) else "AnnData"
        return out

    @property
    def symbols(self) -> pd.Index:
        """The symbols inference may use, in the sample's order."""
        return self.gmap.symbols[self.used]


def spatial_genes(
    source,
    names: pd.Index,
    control: AnnData | str | os.PathLike | None,
    *,
    layer: str | None,
    use_raw: bool | None,
    gene_symbols: str | None,
    organism: Literal["human", "mouse"],
    map_symbols: bool,
    batch: int,
    progress: bool | None,
) -> SpatialGenes:
    """Plan the genes of a spatial run (one pass over the sample, one over the control)."""
    gmap, n_zero = expressed_gene_map(
        source, names, organism=organism, map_symbols=map_symbols, batch=batch, progress=progress
    )
    if control is None:
        return SpatialGenes(gmap, np.arange(gmap.n_output), n_zero)
    with resolve(control, layer=layer, use_raw=use_raw) as inp:
        # path inputs reopen their file for each pass: the source outlives this block
        csource = inp.source()
        cnames = gene_names(inp.var, gene_symbols)
    # R does not map the control's mouse genes (a mouse control then shares almost no gene
    # with the mapped sample); here both are mapped the same way
    cmap, _ = expressed_gene_map(
        csource,
        cnames,
        organism=organism,
        map_symbols=map_symbols,
        batch=batch,
        progress=progress,
        what="control",
    )
    shared = gmap.symbols.isin(cmap.symbols)  # R: olp <- intersect(rownames(expr), rownames(expr_control))
    if not shared.any():
        msg = (
            "the control shares no gene (with counts) with the data; check that both use the same "
            "gene names (e.g. data: {ours}, control: {theirs}), the same gene symbols "
            "({gene_symbols=...}) and organism ({organism=...})."
        )
        raise ParamError(msg, param="control", ours=list(gmap.symbols[:3]), theirs=list(cmap.symbols[:3]))
    n_missing = int((~shared).sum())
    if n_missing:
        hint(
            "flavor='spatial': %s genes with counts in the data are not in the control (with counts) and are dropped, e.g. %s",
            f"{n_missing:,}",
            list(gmap.symbols[~shared][:3]),
        )
    return SpatialGenes(gmap, np.flatnonzero(shared), n_zero, csource, cmap)


def control_centre(
    genes: SpatialGenes, overlap: np.ndarray, *, scale_factor: float, batch: int, progress: bool | None
) -> np.ndarray:
    """The control's mean normalised value of each overlap gene (positions in the sample's
    symbols): scaled to ``scale_factor`` per spot, ``log2(x + 1)``, averaged over spots."""
    cmap = genes.control_gmap
    positions = cmap.symbols.get_indexer(genes.gmap.symbols[overlap])
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        _, centre = pipeline.cell_means(
            genes.control_source,
            mapper=None if cmap.is_identity else cmap,
            overlap=positions,
            input="counts",
            scale_factor=scale_factor,
            batch_size=batch,
            progress=progress,
        )
    for w in caught:
        if isinstance(w.message, EmptyLibraryWarning):
            n = w.message.n_cells
            warnings.warn(
                f"{n} control spots have no counts; they are left out of the control's means.",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    logger.info(
        "flavor='spatial': control means of %s genes over %s spots in %s",
        f"{positions.size:,}",
        f"{genes.control_source.n_obs:,}",
        elapsed(t0),
    )
    return centre


def control_files(control) -> list[Path]:
    """The files a control reads (an output must never be one of them)."""
    if control is None:
        return []
    if isinstance(control, str | os.PathLike):
        return [Path(control)]
    filename = getattr(control, "filename", None)
    return [Path(filename)] if filename is not None else []


def check_spatial(spatial: bool, groupby, input, control, reference) -> None:
    """What ``flavor="spatial"`` (R's per-spot ST pipeline) and ``control`` accept."""
    if not spatial:
        if control is not None:
            msg = (
                "{control=...} is the control sample of the spatial pipeline (R's inputProfile_control): "
                "pass {flavor='spatial'}, or {reference=...} to centre cells on a subset of them."
            )
            raise ParamError(msg)
        return
    if groupby is not None:
        msg = (
            "{flavor='spatial'} is SecAct R's per-spot pipeline and has no {groupby=...}; for activity "
            "per cell type or region use {flavor='single-cell'} with {groupby=...}."
        )
        raise ParamError(msg)
    if input != "counts":
        msg = "{flavor='spatial'} starts from raw counts ({input='counts'}), got {input=}."
        raise ParamError(msg, input=input)
    if control is not None and reference is not None:
        msg = "pass either {control=...} (a control sample) or {reference=...} (spots to centre on)"
        raise ParamError(msg + ", not both.")
