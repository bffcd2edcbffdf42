"""``secact.tl.activity``: SecAct on AnnData, per cell/spot or per group, in memory or out of core."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .. import _results as res
from .._docs import activity_docs, doc_params
from .._errors import ParamError
from .._logging import elapsed, logger
from .._settings import settings
from ..core import pipeline
from ..core.backend import resolve_backend
from ..core.params import InferenceParams
from ..core.plan import make_plan
from ..datasets._signatures import SIGNATURES, _signature
from ..io import check_output, resolve
from ._cells import cell_results, finished_sidecar
from ._common import (
    check_batch_size,
    check_input,
    check_scale_factor,
    gene_names,
    mapped_genes,
    reference_mask,
    write_atomic,
)
from ._feedback import MANY_CELLS, overlap_feedback, permutation_note
from ._groups import group_entry, group_labels
from ._spatial_activity import check_spatial, control_centre, control_files, spatial_genes

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["activity"]


@doc_params(**activity_docs)
def activity(
    adata: AnnData | str | os.PathLike,
    signature: str | os.PathLike | pd.DataFrame = "SecAct",
    *,
    groupby: str | None = None,
    reference: str | np.ndarray | pd.Series | tuple[str, object] | None = None,
    flavor: Literal["single-cell", "spatial"] = "single-cell",
    control: AnnData | str | os.PathLike | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    measurement: str = "RNA",
    gene_symbols: str | None = None,
    organism: Literal["human", "mouse"] = "human",
    input: pipeline.Input = "counts",
    scale_factor: float | None = None,
    method: Literal["permutation", "analytic"] = "permutation",
    n_permutations: int = 1000,
    rng: Literal["mt19937", "srand", "numpy"] = "mt19937",
    seed: int = 0,
    group_signatures: bool = True,
    group_cor: float = 0.9,
    filter_signature: bool = False,
    lambda_: float = 5e5,
    backend: Literal["auto", "cpu", "gpu"] | None = None,
    map_symbols: bool = True,
    stats: str | list[str] | None = None,
    dtype: Literal["float64", "float32"] = "float64",
    batch_size: int | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: bool = False,
    key_added: str = "secact",
    copy: bool = False,
    progress: bool | None = None,
) -> AnnData | None:
    """Secreted-protein signalling activity of cells, spots or cell groups (SecAct).

    Reproduces SecAct R 1.1's single-cell and spatial pipelines exactly:

    * **per group** (``groupby``): counts are summed per group (pseudo-bulk), scaled to 1e6
      per group, ``log2(x + 1)``, centred on the mean over groups (or on the ``reference``
      group, which is then left out), then inferred like :func:`secact.infer`.
    * **per cell/spot** (no ``groupby``): each cell is scaled to ``scale_factor`` counts,
      ``log2(x + 1)``, centred on each gene's mean over all cells (or over the ``reference``
      cells) and inferred.
    * **per spot, spatial** (``flavor="spatial"``, R's ``SecAct.activity.inference.ST``): the
      same after dropping genes without counts, centred on the spots or on a ``control``
      sample.

    Sparse data are never densified: only stored values are normalised, and centring and
    scaling enter as exact corrections, so dense, sparse, batched, backed, path and dask
    inputs all give the same numbers (to 1e-10) for any ``batch_size``. The genes' order is
    the data's order, as in R; it defines the permutation null.

    Parameters
    ----------
    adata
        AnnData (cells x genes) in memory, opened with ``backed="r"`` (or a view of one), or
        a path to an ``.h5ad`` file or ``.zarr`` store (read block by block; nothing is loaded
        whole), or a TileDB-SOMA ``Experiment`` / ``ExperimentAxisQuery`` (e.g. the Census;
        results as for a path). ``X`` may be a dask array (lazy AnnData too), which runs lazily,
        in a thread pool or on a ``dask.distributed`` cluster.
    {signature}
    groupby
        Column of ``obs`` with groups for pseudo-bulk activity. Unused categories are
        ignored; cells with a missing label are left out.
    reference
        Centre on this instead of the mean over all: with ``groupby`` a group name; per cell
        a boolean mask over cells or ``(column, value)``.
    flavor
        ``"single-cell"`` (SecAct R's ``SecAct.activity.inference.scRNAseq``) or
        ``"spatial"`` (``SecAct.activity.inference.ST``, per spot, raw counts only, no
        ``groupby``): genes whose total count over all spots is 0 are dropped *before*
        mouse/alias mapping and duplicate resolution (R's order; the gene set, hence the
        permutation null, differs from ``"single-cell"`` when such genes exist), then spots
        are scaled to ``scale_factor``, ``log2(x + 1)`` and centred on the gene means over
        the spots, or over ``control``. Works on ``sc.read_visium``/squidpy AnnData (results
        are stored like cell-level results). Spots without counts are left out of the means
        and get NaN (R counts them as zero-expression spots); filter them for an exact match
        (``sc.pp.filter_cells(adata, min_counts=1)``).
    control
        ``flavor="spatial"`` only (R's ``inputProfile_control``): a control sample's raw
        counts (AnnData in memory or backed, or an ``.h5ad`` path), read with the same
        ``layer``, ``use_raw``, ``gene_symbols`` and ``organism``. It is prepared like the
        data (genes without counts dropped, symbols mapped, spots scaled and log-transformed)
        and the data are centred on its gene means. Only genes with counts in both are used
        (in the data's order); the others are dropped. Unlike R, a mouse control is mapped to
        human symbols as the data are.
    measurement
        Measurement of a SOMA ``Experiment``; its ``X`` layer is ``layer`` (default ``"raw"``).
    {input}
    organism
        ``"mouse"`` maps mouse genes to human symbols, summing counts of genes that share one
        (R does this in its spatial pipeline).
    input
        ``"counts"`` (raw counts: the full SecAct normalisation), ``"log"`` (already
        log-normalised: only centring) or ``"differential"`` (used as they are).
    scale_factor
        Per-cell/spot scaling (default 1e5 as SecAct R, e.g. Visium; CosMx users pass 1e3).
        Groups use 1e6.
    {inference}
    map_symbols
        Map aliases to official symbols (SecAct R ``transferSymbol``) and resolve duplicates
        by keeping the gene with the largest total (``rm_duplicates``; one extra pass over
        the data when there are duplicates). Symbols are never upper-cased.
    {storage}
    batch_size
        Cells per block (default ``secact.settings.batch_size``). Memory is bounded by the
        block, not by the data.
    out
        Path of an ``.h5ad`` file for the results. Cell level: a sidecar written block by
        block (``X`` = zscore, the other statistics as layers, ``obs`` = the cells), nothing
        large is added to ``adata``. Group level: the groups x proteins AnnData. Files are
        written under a temporary name and renamed when complete. ``out`` is checked before
        anything is computed: it may not be the input file, its folder must exist and be
        writable, and the disk must have room for the results.
    overwrite
        Replace an existing ``out`` (it stays intact until the new file is complete).
    resume
        Continue an interrupted cell-level run to ``out`` (killed, or stopped with Ctrl-C)
        from its last complete block; the result equals an uninterrupted run. The partial
        file records the parameters and the input's identity and is only resumed by the same
        job; without one to resume the run starts afresh. A finished ``out`` of the same job (a
        re-run cell) is reused, not computed again; of another job, refused unless ``overwrite``.
        Bit for bit with the same number of threads (``secact.settings.n_jobs``), else to 1e-10 like any two runs. Partial files of dead processes
        are otherwise removed.
    {run}

    Returns
    -------
    anndata.AnnData or None
        {stored}

        Stored (see :mod:`secact._results`): per cell
        ``adata.obsm[f"{{key_added}}_{{stat}}"]`` (cells x proteins) and
        ``adata.uns[key_added]["cells"]``; per group ``adata.uns[key_added]["groups"]`` with
        groups x proteins DataFrames ``beta``, ``se``, ``zscore``, ``pvalue``, ``n_cells`` and
        ``params``. Both levels can live under one key.
    """
    options = InferenceParams(
        method, n_permutations, rng, seed, group_signatures, group_cor, filter_signature, lambda_
    )
    stats = res.check_stats(stats)
    store_dtype = res.check_dtype(dtype)
    res.check_key(key_added)
    check_batch_size(batch_size)
    batch = int(batch_size or settings.batch_size)
    sf = check_scale_factor(scale_factor)
    check_input(input, groupby, reference, flavor)
    spatial = flavor == "spatial"
    check_spatial(spatial, groupby, input, control, reference)
    if resume and (out is None or groupby is not None):
        msg = "{resume=True} continues a cell-level run to a sidecar: it needs {out=...}"
        raise ParamError(msg + " and no {groupby=...}.")
    with resolve(adata, layer=layer, use_raw=use_raw, measurement=measurement) as inp:
        if inp.adata is None and groupby is None and out is None:
            msg = "cell-level results of a path or SOMA input need a sidecar: pass out='results.h5ad'."
            raise ValueError(msg)
        dest = res.target(inp, copy=copy, sidecar=(out is not None) if groupby is None else None)
        labels = None if groupby is None else group_labels(inp.obs, groupby, reference, input)
        sig = _signature(signature)
        if out is not None:  # before any pass over the data
            rows, n_stats = (inp.n_obs, len(stats)) if groupby is None else (0, 0)
            nbytes = rows * sig.shape[1] * n_stats * store_dtype.itemsize
            reads = inp.files() + control_files(control)
            out = check_output(out, reads=reads, overwrite=overwrite, nbytes=nbytes, resume=resume)
        engine_backend = resolve_backend(backend, inp.matrix)  # before any pass over the data
        source = inp.source()
        names = gene_names(inp.var, gene_symbols)
        genes = None
        if spatial:  # R's ST order: genes without counts go first
            genes = spatial_genes(
                source,
                names,
                control,
                layer=layer,
                use_raw=use_raw,
                gene_symbols=gene_symbols,
                organism=organism,
                map_symbols=map_symbols,
                batch=batch,
                progress=progress,
            )
            gmap, profile_genes = genes.gmap, genes.symbols
        else:
            gmap = mapped_genes(source, names, organism, map_symbols, batch=batch, progress=progress)
            profile_genes = gmap.symbols
        sig_name = signature if isinstance(signature, str) and signature in SIGNATURES else None
        plan = make_plan(sig, profile_genes, options, signature_name=sig_name, backend=engine_backend)
        overlap_feedback(plan.gene_index.size, sig.shape[0])
        # positions of the overlap genes among the mapped genes (the plan's profile may be a subset)
        overlap = plan.gene_index if genes is None else genes.used[plan.gene_index]
        params = {
            **plan.params,
            "signature": sig_name or "custom",
            "input": input,
            "layer": layer,
            "use_raw": inp.use_raw,
            "gene_symbols": gene_symbols,
            "organism": organism,
            "map_symbols": bool(map_symbols),
            "flavor": flavor,
        }
        if genes is not None:
            params.update(genes.params(control))
        mapper = None if gmap.is_identity else gmap
        if groupby is not None:
            entry = group_entry(
                source, mapper, gmap.n_output, plan, labels, groupby, reference, input, batch, progress, params
            )  # fmt: skip
            if dest.is_new or out is not None:
                result = res.groups_anndata(key_added, entry)
                if out is not None:
                    write_atomic(result, out)
                    logger.info("wrote %s (groups x proteins)", os.fspath(out))
                if dest.is_new:
                    return result
            return res.store(dest, "activity", key_added, entry, level="groups")

        params["scale_factor"] = sf
        entry = res.cells_entry(params, plan.proteins, stats, store_dtype, out=out)
        if resume and finished_sidecar(inp, out, params, stats, store_dtype, batch, key_added, overwrite):
            return res.store(dest, "activity", key_added, entry, level="cells")  # as the finished run did
        if options.method == "permutation" and inp.n_obs > MANY_CELLS:
            permutation_note(inp.n_obs, plan, store_dtype)
        library, offset = None, None
        if input != "differential":
            t0 = time.perf_counter()
            library, offset = pipeline.cell_means(
                source,
                mapper=mapper,
                overlap=overlap,
                input=input,
                scale_factor=sf,
                weights=reference_mask(inp.obs, reference),
                batch_size=batch,
                progress=progress,
            )
            logger.info(
                "normalised %s %s (pass 1: library sizes, gene means) in %s",
                f"{inp.n_obs:,}",
                "spots" if spatial else "cells",
                elapsed(t0),
            )
        if genes is not None and genes.control_source is not None:
            offset = control_centre(genes, overlap, scale_factor=sf, batch=batch, progress=progress)
        columns, sub_map = gmap.restrict(overlap)
        prepare = pipeline.Prepare(sub_map, input, sf, library)
        job = pipeline.BlockJob(
            plan.engine(offset, dtype=store_dtype), prepare, plan.row_index, stats, store_dtype
        )
        cell_results(
            inp, source, job, columns, entry, params, out=out, resume=resume, target=dest.adata, key_added=key_added,
            batch=batch, progress=progress, what=("spots" if spatial else "cells", plan, options),
        )  # fmt: skip
        return res.store(dest, "activity", key_added, entry, level="cells")
