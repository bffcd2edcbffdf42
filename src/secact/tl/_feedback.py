"""What ``secact.tl.activity`` tells its user: gene overlap, the cost of permutations, timings."""

from __future__ import annotations

import time
import warnings

import numpy as np

from .._infer import _method_text
from .._logging import elapsed, logger
from .._settings import settings

__all__ = [
    "MANY_CELLS",
    "MIN_SHARE",
    "PERMUTATION_COST",
    "inference_done",
    "overlap_feedback",
    "permutation_note",
    "permutation_seconds",
]

#: below this share of the signature's genes found in the data, a warning says what to check
MIN_SHARE = 0.3
#: cell-level permutation runs on more cells than this get a note with the estimated time
MANY_CELLS = 5_000
#: core-seconds per cell x overlap gene x signature column x permutation of the permutation
#: engine (float64), from SecAct (657 columns, ~7,900 overlap genes of 20,000-gene counts,
#: 1,000 permutations: 13 s per 1,000 cells on 2 cores, README); float32 takes about 0.55 of
#: that. A rough guide for the permutation-dominated runs the note is for: denser cells cost
#: more (the sparse kernels work on stored genes), and fixed costs are left out.
PERMUTATION_COST = 5e-12


def overlap_feedback(n_found: int, n_signature: int) -> None:
    """Log how many signature genes the data have; warn (instead) when it is a small share."""
    share = n_found / n_signature
    if share >= MIN_SHARE:
        logger.info(
            "%s of %s signature genes found in the data (%.1f%%)",
            f"{n_found:,}",
            f"{n_signature:,}",
            100 * share,
        )
        return
    warnings.warn(
        f"only {n_found:,} of {n_signature:,} signature genes found in the data ({100 * share:.1f}%); "
        "activities rest on few genes. Check that var_names are gene symbols (for Ensembl ids pass "
        "gene_symbols='<var column with symbols>'), organism='mouse' for mouse data, and that the "
        "matrix holds all genes (adata.raw vs X or a layer of selected genes: use_raw=/layer=).",
        UserWarning,
        stacklevel=3,
    )


def permutation_seconds(n_cells: int, plan, dtype=np.float64) -> float:
    """Rough duration of a cell-level permutation run on ``secact.settings.threads`` threads
    (see :data:`PERMUTATION_COST`)."""
    work = n_cells * plan.gene_index.size * plan.model.n_proteins * plan.options.n_permutations
    factor = 0.55 if np.dtype(dtype) == np.float32 else 1.0
    return work * PERMUTATION_COST * factor / settings.threads


def permutation_note(n_cells: int, plan, dtype) -> None:
    seconds = permutation_seconds(n_cells, plan, dtype)
    logger.warning(
        "method='permutation' on %s cells: %s permutations per cell, estimated %s on %d threads; "
        "method='analytic' gives the exact permutation mean and variance (no Monte-Carlo noise) "
        "in a small fraction of that time.",
        f"{n_cells:,}",
        f"{plan.options.n_permutations:,}",
        elapsed(time.perf_counter() - seconds),  # a duration in elapsed()'s format
        settings.threads,
    )


def inference_done(n_cells: int, plan, options, t0: float, spatial: bool) -> None:
    logger.info(
        "computed activity of %s %s x %s proteins in %s (%s)",
        f"{n_cells:,}",
        "spots" if spatial else "cells",
        f"{len(plan.proteins):,}",
        elapsed(t0),
        _method_text(options),
    )
