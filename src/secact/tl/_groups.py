"""Group level of ``secact.tl.activity``: pseudo-bulk per group, normalise, centre, infer."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .. import _results as res
from .._infer import _method_text
from .._logging import elapsed, logger
from ..core import pipeline
from ._common import group_codes

__all__ = ["group_entry", "group_labels"]


def group_labels(obs, groupby: str, reference, input) -> tuple[np.ndarray, list[str]]:
    """Each cell's group (``-1``: none) and the used groups' names; checks ``reference``.

    Run before any pass over the data, so that a mistake is reported at once."""
    codes, categories = group_codes(obs, groupby)
    used = np.unique(codes[codes >= 0])
    names = [str(categories[i]) for i in used]
    if len(set(names)) != len(names):
        msg = f"the labels of {groupby!r} are not unique as strings: {names}; rename them."
        raise ValueError(msg)
    remap = np.full(len(categories) + 1, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    codes = remap[codes]  # -1 stays -1 (index -1 is the extra slot)
    if not names:
        msg = f"obs[{groupby!r}] has no non-missing values."
        raise ValueError(msg)
    if reference is not None and str(reference) not in names:
        msg = f"reference group {reference!r} is not among the groups of {groupby!r}: {names}."
        raise ValueError(msg)
    if reference is not None and len(names) < 2:
        msg = f"obs[{groupby!r}] has only the reference group {reference!r}: there is nothing to compare with it."
        raise ValueError(msg)
    if reference is None and len(names) < 2 and input != "differential":
        msg = f"obs[{groupby!r}] has a single group; centring on the mean over groups needs two or more."
        raise ValueError(msg)
    return codes, names


def group_entry(
    source, mapper, n_genes, plan, labels, groupby, reference, input, batch, progress, params
) -> dict:
    """Group level: pseudo-bulk, normalise, centre, infer; the ``uns[key]["groups"]`` entry.

    ``labels``: what :func:`group_labels` returned."""
    codes, names = labels
    t0 = time.perf_counter()
    sums = pipeline.group_profiles(
        source,
        mapper=mapper,
        codes=codes,
        n_groups=len(names),
        n_genes=n_genes,
        input=input,
        batch_size=batch,
        progress=progress,
    )
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    values = pipeline.group_values(sums, counts, names, input)
    centre = None
    if input != "differential":
        ov = values[:, plan.gene_index]
        centre = ov[names.index(str(reference))] if reference is not None else ov.mean(axis=0)
    if reference is not None:  # the reference against itself is zero everywhere: left out
        keep = [i for i, name in enumerate(names) if name != str(reference)]
        values, names, counts = values[keep], [names[i] for i in keep], counts[keep]
    stats = pipeline.infer_matrix(plan, values, names, offset=centre)
    index = pd.Index(names, name=groupby)
    tables = {k: pd.DataFrame(getattr(stats, k), index=index, columns=plan.proteins) for k in res.STATS}
    logger.info(
        "computed activity of %s groups x %s proteins in %s (%s)",
        f"{len(names):,}",
        f"{len(plan.proteins):,}",
        elapsed(t0),
        _method_text(plan.options),
    )
    params = {**params, "groupby": groupby, "reference": None if reference is None else str(reference)}
    return res.groups_entry(params, groupby, tables, counts)
