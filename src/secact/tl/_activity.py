"""``secact.tl.activity``: SecAct on AnnData, per cell/spot or per group, in memory or out of core."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import progress_bar, want_progress
from ..core.plan import Plan, make_plan
from ..core.runner import STATS, BlockJob, run_blocks
from ..datasets._signatures import SIGNATURES, _signature
from ..pp._normalize import cpm_log2, group_sums, is_integral, library_sizes, log_normalize
from ..pp._symbols import GeneMap, gene_map, looks_like_ensembl

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["activity"]

logger = logging.getLogger("secact")

Input = Literal["counts", "log", "differential"]
_DEFAULT_BATCH = 2048


# ----------------------------------------------------------------------------------------------
# per-block functions (picklable: the same objects run in-process and on dask workers)
# ----------------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Mapper:
    """Raw block (cells x input genes) -> cells x mapped genes, restricted to ``columns``."""

    gmap: GeneMap | None  # None: identity

    def __call__(self, block):
        if self.gmap is None or self.gmap.is_identity:
            return block
        return self.gmap.apply(block)


def _check_counts(block, start: int) -> None:
    integral, nonneg = is_integral(block)
    if not (integral and nonneg):
        what = "negative" if not nonneg else "non-integer"
        msg = (
            f"input='counts' but the data has {what} values (rows {start}..{start + block.shape[0] - 1}). "
            "Pass input='log' for log-normalised data (only centring is done) or "
            "input='differential' for values to use as they are; or choose the counts with "
            "layer=... / use_raw=True."
        )
        raise ValueError(msg)


def _check_finite(block, start: int) -> None:
    values = block.data if sp.issparse(block) else np.asarray(block)
    if values.size and not np.isfinite(values).all():
        msg = f"the data has NaN or infinite values (rows {start}..{start + block.shape[0] - 1})."
        raise ValueError(msg)


@dataclass(eq=False)
class _Pass1:
    """Per-block statistics of the first pass: library sizes and column sums of the values."""

    mapper: _Mapper
    overlap: np.ndarray  # mapped-gene positions of the overlap genes
    input: Input
    scale_factor: float

    def __call__(self, block, start: int, weights: np.ndarray | None):
        _check_finite(block, start)
        if self.input == "counts":
            _check_counts(block, start)
        mapped = self.mapper(block)
        lib = library_sizes(mapped)
        ov = _columns(mapped, self.overlap)
        if self.input == "counts":
            ov = log_normalize(ov, lib, self.scale_factor)
        w = (lib > 0).astype(np.float64) if self.input == "counts" else np.ones(block.shape[0])
        if weights is not None:
            w = w * weights
        sums = np.asarray(ov.T @ w).ravel()
        return lib, sums, float(w.sum())


@dataclass(eq=False)
class _Prepare:
    """Pass-2 block preparation: map genes, normalise, flag cells without counts."""

    mapper: _Mapper  # the pass-2 columns -> the overlap genes
    input: Input
    scale_factor: float
    library: np.ndarray | None  # library size of every cell (counts input)

    def __call__(self, block, start: int):
        ov = _columns(self.mapper(block), None)
        if self.input == "counts":
            lib = self.library[start : start + block.shape[0]]
            return log_normalize(ov, lib, self.scale_factor), ~(lib > 0)
        _check_finite(ov, start)
        return ov, np.zeros(block.shape[0], dtype=bool)


def _columns(block, idx: np.ndarray | None):
    if idx is None:
        return block
    out = block[:, idx]
    return sp.csr_matrix(out) if sp.issparse(out) else np.asarray(out, dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# the tool
# ----------------------------------------------------------------------------------------------
def activity(
    adata: AnnData | str | os.PathLike,
    signature: str | os.PathLike | pd.DataFrame = "SecAct",
    *,
    groupby: str | None = None,
    reference: str | np.ndarray | pd.Series | tuple[str, object] | None = None,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    organism: Literal["human", "mouse"] = "human",
    input: Input = "counts",
    scale_factor: float | None = None,
    method: Literal["permutation", "analytic"] = "permutation",
    n_permutations: int = 1000,
    rng: Literal["mt19937", "srand", "numpy"] = "mt19937",
    seed: int = 0,
    group_signatures: bool = True,
    group_cor: float = 0.9,
    filter_signature: bool = False,
    lambda_: float = 5e5,
    map_symbols: bool = True,
    batch_size: int | None = None,
    out: str | os.PathLike | None = None,
    key_added: str = "secact",
    copy: bool = False,
    progress: bool | None = None,
) -> AnnData | None:
    """Secreted-protein signalling activity of cells, spots or cell groups (SecAct).

    Reproduces SecAct R 1.1's single-cell and spatial pipelines exactly:

    * **per group** (``groupby``): counts are summed per group (pseudo-bulk), scaled to 1e6
      per group, ``log2(x + 1)``, centred on the mean over groups (or on the ``reference``
      group), then inferred like :func:`secact.infer`. Results: ``adata.uns[key_added]`` with
      DataFrames ``beta``, ``se``, ``zscore``, ``pvalue`` (groups x proteins) and ``params``.
    * **per cell/spot** (no ``groupby``): each cell is scaled to ``scale_factor`` counts,
      ``log2(x + 1)``, centred on each gene's mean over all cells (or over the ``reference``
      cells) and inferred. Results: ``adata.obsm[f"{key_added}_{stat}"]`` (cells x proteins
      DataFrames) and ``adata.uns[key_added]`` (``proteins``, ``params``), or, with ``out``, a
      sidecar ``.h5ad`` written block by block.

    Sparse data are never densified: only stored values are normalised, and centring and
    scaling enter as exact corrections, so dense, sparse, batched, backed, path and dask inputs
    all give the same numbers (to 1e-10) for any ``batch_size``. The genes' order is the data's
    order, as in R; it defines the permutation null.

    Parameters
    ----------
    adata
        AnnData (cells x genes), in memory or opened with ``backed="r"``, or a path to an
        ``.h5ad`` file (opened read-only, processed in blocks; needs ``out`` for cell-level
        results). ``X`` may be a dask array (chunked along cells), which runs lazily and under
        ``dask.distributed``.
    signature
        ``"SecAct"``, ``"CytoSig"``, a path or a genes x proteins DataFrame.
    groupby
        Column of ``obs`` with groups for pseudo-bulk activity. Unused categories are ignored;
        cells with a missing group are left out.
    reference
        Centre on this instead of the mean over all: with ``groupby`` a group name; per cell an
        obs mask (boolean array/Series) or ``(column, value)``.
    layer, use_raw
        Where the counts are (``adata.layers[layer]``, ``adata.raw``, else ``X``).
    gene_symbols
        Column of ``var`` with gene symbols (when ``var_names`` are e.g. Ensembl ids).
    organism
        ``"mouse"`` maps mouse genes to human symbols, summing counts of genes that share one.
    input
        ``"counts"`` (raw counts: the full SecAct normalisation), ``"log"`` (already
        log-normalised: only centring) or ``"differential"`` (used as they are).
    scale_factor
        Per-cell scaling (default 1e5 as SecAct R; CosMx users pass 1e3). Groups use 1e6.
    method, n_permutations, rng, seed, group_signatures, group_cor, filter_signature, lambda_
        As in :func:`secact.infer`.
    map_symbols
        Map aliases to official symbols (SecAct R ``transferSymbol``) and resolve duplicates by
        keeping the gene with the largest total (``rm_duplicates``). Symbols are never
        upper-cased.
    batch_size
        Cells per block (default 2048). Memory is bounded by the block, not by the data.
    out
        Path of a sidecar ``.h5ad`` for cell-level results (``X`` = zscore, layers ``beta``,
        ``se``, ``pvalue``), written block by block under a temporary name and renamed when
        complete. Nothing large is added to ``adata`` then.
    key_added
        Key for ``uns`` and prefix for ``obsm``.
    copy
        Return a modified copy instead of writing to ``adata``.
    progress
        Show a progress bar over blocks (default: when scanpy's verbosity is at least
        'info', or scanpy is not imported and the output is a terminal).

    Returns
    -------
    ``None``, or a copy of ``adata`` when ``copy=True``.
    """
    import anndata as ad

    from ..io import SidecarWriter, block_source

    if input not in ("counts", "log", "differential"):
        msg = f"input must be 'counts', 'log' or 'differential', got {input!r}."
        raise ValueError(msg)
    path_input = isinstance(adata, str | os.PathLike)
    if path_input:
        if not Path(adata).exists():
            msg = f"no file at {os.fspath(adata)!r}."
            raise FileNotFoundError(msg)
        adata = ad.read_h5ad(adata, backed="r")
    elif not isinstance(adata, ad.AnnData):
        msg = f"adata must be an AnnData or a path to an .h5ad file, got {type(adata).__name__}."
        raise TypeError(msg)
    if copy:
        if adata.isbacked:
            msg = "copy=True is not possible for a backed AnnData; use out=... for results."
            raise ValueError(msg)
        adata = adata.copy()
    backed_view = adata.is_view and adata.isbacked
    if backed_view and (out is None or groupby is not None):
        msg = (
            "a view of a backed AnnData cannot hold results: pass out='results.h5ad' for "
            "cell-level results, or load the subset with .to_memory()."
        )
        raise ValueError(msg)
    if groupby is None and path_input and out is None:
        msg = "cell-level results of an .h5ad path need a sidecar: pass out='results.h5ad'."
        raise ValueError(msg)
    if out is not None and groupby is not None:
        msg = "out= is for cell-level results; group results are small and go to adata.uns."
        raise ValueError(msg)
    if batch_size is not None and (not isinstance(batch_size, int | np.integer) or batch_size < 1):
        msg = f"batch_size must be a positive integer, got {batch_size!r}."
        raise ValueError(msg)
    batch = int(batch_size or _DEFAULT_BATCH)
    use_raw = bool(use_raw) if use_raw is not None else False
    if use_raw and layer is not None:
        msg = "use either layer= or use_raw=True, not both."
        raise ValueError(msg)
    if input == "differential" and groupby is None and reference is not None:
        msg = "input='differential' is used as it is: a reference has no effect; drop it."
        raise ValueError(msg)

    x = _matrix(adata, layer, use_raw)
    is_dask = _is_dask(x)
    names = _gene_names(adata, use_raw, gene_symbols)
    sig = _signature(signature)
    sig_name = signature if isinstance(signature, str) and signature in SIGNATURES else None

    source = None if is_dask else block_source(adata, layer=layer, use_raw=use_raw)
    gmap = _resolve_gene_map(names, organism, map_symbols, source, x, batch, input)
    plan = make_plan(
        sig,
        gmap.symbols,
        method=method,
        n_permutations=n_permutations,
        rng=rng,
        seed=seed,
        group_signatures=group_signatures,
        group_cor=group_cor,
        filter_signature=filter_signature,
        lambda_=lambda_,
        signature_name=sig_name,
    )
    params = dict(plan.params)
    params.update(
        signature=sig_name or "custom",
        input=input,
        groupby=groupby or "",
        layer=layer or "",
        use_raw=use_raw,
        organism=organism,
        map_symbols=bool(map_symbols),
    )
    show = want_progress(progress)

    if groupby is not None:
        result = _group_level(adata, x, source, gmap, plan, groupby, reference, input, batch, show, is_dask)
        result["params"] = params
        adata.uns[key_added] = result
        logger.info("added adata.uns[%r] (beta, se, zscore, pvalue: groups x proteins; params)", key_added)
        return adata if copy else None

    sf = float(scale_factor) if scale_factor is not None else 1e5
    if not sf > 0:
        msg = f"scale_factor must be > 0, got {scale_factor!r}."
        raise ValueError(msg)
    params["scale_factor"] = sf
    weights = _reference_mask(adata, reference)
    mapper = _Mapper(None if gmap.is_identity else gmap)
    overlap = plan.gene_index
    n_obs = adata.n_obs

    # pass 1: library sizes and each overlap gene's mean (over all or reference cells)
    offset = None
    library = None
    if input != "differential":
        p1 = _Pass1(mapper, overlap, input, sf)
        if is_dask:
            library, sums, total = _dask_pass1(x, p1, weights)
        else:
            library = np.empty(n_obs)
            sums = np.zeros(overlap.size)
            total = 0.0
            for start, stop, block in progress_bar(
                source.row_blocks(batch), show, n_obs, batch, "secact pass 1"
            ):
                w = None if weights is None else weights[start:stop]
                lib, s, t = p1(block, start, w)
                library[start:stop] = lib
                sums += s
                total += t
        if total == 0:
            msg = "no cell with counts to centre on (all library sizes are zero, or the reference is empty)."
            raise ValueError(msg)
        offset = sums / total
        n_zero = int((library == 0).sum()) if input == "counts" else 0
        if n_zero:
            logger.warning("%d cells have no counts; their results are NaN", n_zero)
            import warnings

            warnings.warn(
                f"{n_zero} cells have a library size of 0; their results are NaN.",
                RuntimeWarning,
                stacklevel=2,
            )
        if input != "counts":
            library = None

    # pass 2: inference, block by block
    columns, sub_mapper = _pass2_columns(gmap, overlap)
    prepare = _Prepare(sub_mapper, input, sf, library)
    job = BlockJob(plan.engine(offset), prepare, plan.row_index)
    proteins = pd.Index(plan.proteins)
    uns = {"proteins": list(proteins), "params": params}

    if is_dask:
        _dask_pass2(adata, x, job, columns, proteins, out, key_added, uns)
        return adata if copy else None

    blocks = progress_bar(source.row_blocks(batch, columns), show, n_obs, batch, "secact")
    if out is not None:
        with SidecarWriter(out, adata.obs_names, proteins, uns=params) as writer:
            run_blocks(
                job,
                blocks,
                lambda a, b, st: writer.write(a, b, {k: getattr(st, k) for k in STATS}),
                background=True,
            )
        uns["out"] = os.fspath(out)
        if not (path_input or backed_view):
            adata.uns[key_added] = uns
        logger.info("wrote %s (X = zscore; layers beta, se, pvalue)", os.fspath(out))
        return adata if copy else None
    arrays = {k: np.empty((n_obs, len(proteins))) for k in STATS}

    def sink(a, b, st):
        for k in STATS:
            arrays[k][a:b] = getattr(st, k)

    run_blocks(job, blocks, sink)
    for k in STATS:
        adata.obsm[f"{key_added}_{k}"] = pd.DataFrame(arrays[k], index=adata.obs_names, columns=proteins)
    adata.uns[key_added] = uns
    logger.info(
        "added adata.obsm[%r] for beta, se, zscore, pvalue and adata.uns[%r]", f"{key_added}_*", key_added
    )
    return adata if copy else None


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _is_dask(x) -> bool:
    return type(x).__module__.startswith("dask.")


def _matrix(adata, layer, use_raw):
    if use_raw:
        if adata.raw is None:
            msg = "use_raw=True but adata.raw is None; pass layer=... or put counts in X."
            raise ValueError(msg)
        return adata.raw.X
    if layer is not None:
        if layer not in adata.layers:
            msg = f"layer {layer!r} not found; available layers: {list(adata.layers.keys())}."
            raise KeyError(msg)
        return adata.layers[layer]
    if adata.X is None:
        msg = "adata.X is empty; pass layer=... with the counts."
        raise ValueError(msg)
    return adata.X


def _gene_names(adata, use_raw: bool, gene_symbols: str | None) -> pd.Index:
    var = adata.raw.var if use_raw else adata.var
    if gene_symbols is not None:
        if gene_symbols not in var.columns:
            msg = f"gene_symbols={gene_symbols!r} is not a column of var; columns: {list(var.columns)}."
            raise KeyError(msg)
        names = pd.Index(var[gene_symbols].astype(str))
    else:
        names = pd.Index((adata.raw.var_names if use_raw else adata.var_names).astype(str))
        if looks_like_ensembl(names):
            msg = (
                "var_names look like Ensembl ids; SecAct signatures use gene symbols. Pass "
                "gene_symbols='<var column with symbols>' (e.g. 'gene_symbols' or 'feature_name')."
            )
            raise ValueError(msg)
    return names


def _resolve_gene_map(names, organism, map_symbols, source, x, batch, input) -> GeneMap:
    try:
        return gene_map(names, organism=organism, map_symbols=map_symbols)
    except ValueError as err:
        if "totals" not in str(err):
            raise
    # duplicated symbols: R keeps the gene with the largest total -> one extra pass for totals
    totals = np.zeros(len(names))
    if source is None:
        totals = np.asarray(x.sum(axis=0).compute()).ravel()
    else:
        for start, _stop, block in source.row_blocks(batch):
            _check_finite(block, start)
            totals += np.asarray(block.sum(axis=0)).ravel()
    return gene_map(names, organism=organism, map_symbols=map_symbols, totals=totals)


def _pass2_columns(gmap: GeneMap, overlap: np.ndarray):
    """Input columns to read in pass 2, and how to get the overlap genes from them."""
    if gmap.is_identity:
        return overlap, _Mapper(None)
    if gmap.is_selection:
        return gmap.selected[overlap], _Mapper(None)
    sub = gmap.matrix[:, overlap].tocsr()
    rows = np.flatnonzero(np.diff(sub.indptr))
    return rows, _Mapper(GeneMap(symbols=gmap.symbols[overlap], matrix=sub[rows].tocsc()))


def _reference_mask(adata, reference) -> np.ndarray | None:
    if reference is None:
        return None
    if isinstance(reference, tuple) and len(reference) == 2:
        column, value = reference
        if column not in adata.obs.columns:
            msg = f"reference column {column!r} is not in obs; columns: {list(adata.obs.columns)}."
            raise KeyError(msg)
        mask = (adata.obs[column] == value).to_numpy(dtype=bool)
        if not mask.any():
            msg = f"no cell has obs[{column!r}] == {value!r}; the reference is empty."
            raise ValueError(msg)
    else:
        mask = np.asarray(reference)
        if mask.dtype != bool or mask.shape != (adata.n_obs,):
            msg = (
                "reference must be a boolean mask over cells (length n_obs) or a (column, value) "
                f"pair; got {type(reference).__name__} of shape {getattr(mask, 'shape', None)}."
            )
            raise ValueError(msg)
        if not mask.any():
            msg = "the reference mask selects no cell."
            raise ValueError(msg)
    return mask.astype(np.float64)


def _group_level(adata, x, source, gmap, plan: Plan, groupby, reference, input, batch, show, is_dask) -> dict:
    if groupby not in adata.obs.columns:
        msg = f"groupby={groupby!r} is not a column of obs; columns: {list(adata.obs.columns)}."
        raise KeyError(msg)
    labels = adata.obs[groupby]
    cats = labels.astype("category")
    used = cats.cat.remove_unused_categories()
    if len(used.cat.categories) < len(cats.cat.categories):
        logger.info(
            "ignoring %d unused categories of %r",
            len(cats.cat.categories) - len(used.cat.categories),
            groupby,
        )
    names = [str(c) for c in used.cat.categories]
    codes = used.cat.codes.to_numpy().astype(np.int64)
    n_groups = len(names)
    if n_groups == 0:
        msg = f"obs[{groupby!r}] has no non-missing values."
        raise ValueError(msg)
    if reference is not None and str(reference) not in names:
        msg = f"reference group {reference!r} is not among the groups of {groupby!r}: {names}."
        raise ValueError(msg)
    if reference is None and n_groups < 2 and input != "differential":
        msg = f"obs[{groupby!r}] has a single group; centring on the mean over groups needs two or more."
        raise ValueError(msg)
    mapper = _Mapper(None if gmap.is_identity else gmap)
    sums = np.zeros((n_groups, gmap.n_output))
    counts = np.bincount(codes[codes >= 0], minlength=n_groups).astype(np.float64)
    if is_dask:
        import dask

        blocks = _dask_row_blocks(x)
        parts = [
            dask.delayed(_group_part)(b, s, mapper, codes[s : s + n], n_groups, input) for s, n, b in blocks
        ]
        for part in dask.compute(*parts):
            sums += part
    else:
        for start, stop, block in progress_bar(
            source.row_blocks(batch), show, adata.n_obs, batch, "secact pseudo-bulk"
        ):
            sums += _group_part(block, start, mapper, codes[start:stop], n_groups, input)
    if input == "counts":
        empty = sums.sum(axis=1) == 0
        if empty.any():
            msg = f"groups {[names[i] for i in np.flatnonzero(empty)]} have no counts; remove them from {groupby!r}."
            raise ValueError(msg)
        values = cpm_log2(sums)
    else:
        values = sums / counts[:, None]
    values = values[:, plan.gene_index]
    if input != "differential":
        centre = values[names.index(str(reference))] if reference is not None else values.mean(axis=0)
        values = values - centre
    if reference is not None:  # the reference against itself is zero everywhere: left out
        keep = [i for i, name in enumerate(names) if name != str(reference)]
        values, names, counts = values[keep], [names[i] for i in keep], counts[keep]
    stats = plan.engine().run(values)
    proteins = pd.Index(plan.proteins)
    index = pd.Index(names, name=groupby)
    result = {k: pd.DataFrame(plan.expand(getattr(stats, k)), index=index, columns=proteins) for k in STATS}
    result["n_cells"] = pd.Series(counts, index=index)
    return result


def _group_part(block, start, mapper, codes, n_groups, input):
    _check_finite(block, start)
    if input == "counts":
        _check_counts(block, start)
    return group_sums(mapper(block), codes, n_groups)


# ----------------------------------------------------------------------------------------------
# dask: the same per-block functions, scheduled lazily
# ----------------------------------------------------------------------------------------------
def _dask_row_blocks(x):
    """``(start, n_rows, delayed block)`` for each chunk of rows of a dask array."""
    if len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})
    starts = np.concatenate([[0], np.cumsum(x.chunks[0])[:-1]])
    delayed = x.to_delayed().ravel()
    return [(int(s), int(n), d) for s, n, d in zip(starts, x.chunks[0], delayed, strict=True)]


def _dask_pass1(x, p1: _Pass1, weights):
    import dask

    blocks = _dask_row_blocks(x)
    parts = [dask.delayed(p1)(b, s, None if weights is None else weights[s : s + n]) for s, n, b in blocks]
    results = dask.compute(*parts)
    library = np.concatenate([r[0] for r in results])
    sums = np.sum([r[1] for r in results], axis=0)
    total = float(sum(r[2] for r in results))
    return library, sums, total


def _dask_pass2(adata, x, job: BlockJob, columns, proteins, out, key_added, uns):
    import dask
    import dask.array as da

    from ..io import SidecarWriter

    x = x[:, columns]
    blocks = _dask_row_blocks(x)
    job_d = dask.delayed(job, pure=True)
    p = len(proteins)
    pieces = [
        da.from_delayed(dask.delayed(BlockJob.stacked)(job_d, b, s), shape=(4, n, p), dtype=np.float64)
        for s, n, b in blocks
    ]
    stacked = da.concatenate(pieces, axis=1)
    if out is not None:
        with SidecarWriter(out, adata.obs_names, proteins, uns=uns["params"]) as writer:
            for (s, n, _b), piece in zip(blocks, pieces, strict=True):
                arr = piece.compute()
                writer.write(s, s + n, {k: arr[i] for i, k in enumerate(STATS)})
        uns["out"] = os.fspath(out)
    else:
        for i, k in enumerate(STATS):
            adata.obsm[f"{key_added}_{k}"] = stacked[i]
        uns["proteins"] = list(proteins)
    adata.uns[key_added] = uns
