"""Cell-level results of ``secact.tl.activity``: streamed to a sidecar, lazy on dask, or in ``obsm``."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from .. import _results as res
from .._logging import logger
from ..core import pipeline
from ..io import SidecarWriter, WriteRows
from ..io._sidecar import reuse_finished
from ._feedback import inference_done

__all__ = ["cell_results", "finished_sidecar", "sidecar_job"]


def sidecar_job(inp, params: dict, stats, dtype, batch: int, key_added: str) -> dict:
    """What identifies a cell-level run to a sidecar: its parameters, the input's identity and
    the key. Recorded in the file; a resumed or reused run must match it."""
    return {
        "params": {**params, "stats": list(stats), "dtype": np.dtype(dtype).name, "batch_size": batch},
        "key_added": key_added,
        "input": inp.identity(),
    }


def finished_sidecar(
    inp, out, params: dict, stats, dtype, batch: int, key_added: str, overwrite: bool
) -> bool:
    """``resume=True``: whether ``out`` is a finished sidecar of this very run (then its results
    are returned as they are: neither the normalisation pass nor the inference runs). A finished
    file of another run is refused (:class:`ValueError` naming what differs) unless ``overwrite``."""
    if not reuse_finished(out, sidecar_job(inp, params, stats, dtype, batch, key_added), overwrite=overwrite):
        return False
    logger.info(
        "%s is the finished result of this run (resume=True): reused, nothing recomputed", os.fspath(out)
    )
    return True


def cell_results(
    inp, source, job: pipeline.BlockJob, columns, entry: dict, params: dict, *, out, resume: bool, target, key_added: str,
    batch: int, progress, what: tuple,
) -> None:  # fmt: skip
    """Run ``job`` over every block of cells into ``out`` (a sidecar), lazily into
    ``target.obsm`` (dask) or into ``target.obsm`` (in memory). ``params``: the run's parameters (they identify
    a resumable job); ``what``: ``(unit, plan, options)`` for the log line."""
    unit, plan, options = what
    stats, store_dtype = job.stats, np.dtype(job.dtype)
    t0 = time.perf_counter()
    if out is not None:
        uns = {key_added: {"cells": entry}}
        with SidecarWriter(
            out,
            inp.obs,
            pd.Index(plan.proteins),
            uns=uns,
            x=res.x_stat(stats),
            layers=[s for s in stats if s != res.x_stat(stats)],
            dtype=store_dtype,
            job=sidecar_job(inp, params, stats, store_dtype, batch, key_added),
            resume=resume,
        ) as writer:
            if writer.resumed_rows:
                logger.info("resuming %s from cell %d of %d", os.fspath(out), writer.resumed_rows, inp.n_obs)
            # dask workers that see the file write their rows into it themselves
            fn = WriteRows(job, writer.target) if source.executor == "dask" else job
            pipeline.cell_activity(
                source,
                fn,
                writer.write,
                columns=columns,
                batch_size=batch,
                progress=progress,
                background=True,
                start=writer.resumed_rows,
            )
        inference_done(inp.n_obs - writer.resumed_rows, plan, options, t0, unit == "spots")
        logger.info("wrote %s (cells x proteins)", os.fspath(out))
    elif source.executor == "dask":
        p = len(plan.proteins)
        lazy = source.lazy(job.stacked, p * len(stats), batch, columns, dtype=store_dtype)
        for i, k in enumerate(stats):
            target.obsm[res.obsm_key(key_added, k)] = lazy[:, i * p : (i + 1) * p]
    else:
        arrays = {k: np.empty((source.n_obs, len(plan.proteins)), dtype=store_dtype) for k in stats}

        def sink(a, b, part):
            for k in stats:
                arrays[k][a:b] = part[k]

        pipeline.cell_activity(source, job, sink, columns=columns, batch_size=batch, progress=progress)
        inference_done(inp.n_obs, plan, options, t0, unit == "spots")
        for k in stats:
            target.obsm[res.obsm_key(key_added, k)] = pd.DataFrame(
                arrays[k], index=target.obs_names, columns=plan.proteins
            )
