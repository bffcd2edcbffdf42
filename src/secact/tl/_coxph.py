"""Survival regression of a bulk cohort on protein activity: ``secact.tl.coxph``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from scipy import special

from .._cohort import cohort
from .._errors import ParamError

if TYPE_CHECKING:
    from anndata import AnnData

    from .._infer import ActivityResult

__all__ = ["COXPH_COLUMNS", "coxph"]

logger = logging.getLogger("secact")

#: The columns of the table :func:`coxph` returns (one row per protein).
COXPH_COLUMNS = ("risk_z", "pvalue", "coef", "se", "n", "n_events", "failure")


def coxph(
    activity: ActivityResult | pd.DataFrame | AnnData,
    clinical: pd.DataFrame,
    *,
    time: str = "Time",
    event: str = "Event",
    covariates: Sequence[str] | None = None,
    ties: Literal["efron", "breslow"] = "efron",
) -> pd.DataFrame:
    """Cox regression of survival on each protein's activity: a risk score per protein.

    The Python counterpart of SecAct R's ``SecAct.coxph.regression``: for every protein,
    ``coxph(Surv(time, event) ~ covariates + activity)``, and the Wald z of the activity
    (the *risk score*: positive when higher activity goes with shorter survival) and its
    p-value. The fits reproduce R's ``survival::coxph`` (its Newton-Raphson iteration,
    step halving, convergence rule and tolerances, Efron's ties, ``timefix``) for all
    proteins at once (``secact.core.cox``); z and p agree with R to rounding. Where R
    warns or errors (no convergence, an infinite coefficient) or the activity is singular
    (e.g. constant), the risk score is ``NaN`` as in SecAct R, and ``failure`` says why.

    Parameters
    ----------
    activity
        A :class:`secact.ActivityResult` (its ``zscore``), a samples x proteins DataFrame,
        or a samples x proteins AnnData (``X``), e.g. from :func:`secact.get.activity` or
        :meth:`secact.ActivityResult.to_anndata`.
    clinical
        Samples x clinical variables, indexed by sample: the follow-up time, the event
        indicator (1 / ``True``: event such as death, 0: censored) and covariates. Only
        samples in both tables are used (the count is logged); samples with a missing
        clinical value are left out, and for one protein those with a missing activity, as
        R's ``coxph`` does.
    time, event
        The columns of ``clinical`` with the time and the event.
    covariates
        Columns of ``clinical`` to adjust for. Default: every other column (R's
        ``Surv(Time, Event) ~ .``); ``[]``: none. Numbers enter as they are, booleans as
        0/1, other columns as factors (one indicator per level but the first, levels
        sorted, or in the order of a categorical).
    ties
        ``"efron"`` (R's default) or ``"breslow"``.

    Returns
    -------
    pandas.DataFrame
        One row per protein (the activity's order) with the columns
        ``risk_z`` (Wald z of the activity), ``pvalue`` (two-sided), ``coef`` (log hazard
        ratio per unit of activity), ``se``, ``n`` (samples used), ``n_events`` and
        ``failure`` (empty, or why ``risk_z`` is ``NaN``). Plot the risk scores with
        :func:`secact.pl.lollipop` or :func:`secact.pl.bar` (``data=table["risk_z"]``).
    """
    from ..core.cox import FAILURES, cox_fit

    if ties not in ("efron", "breslow"):
        raise ParamError("{ties=} must be 'efron' or 'breslow'.", ties=ties)
    c = cohort(activity, clinical, time=time, event=event, covariates=covariates)
    values = c.activity.to_numpy()
    proteins = c.activity.columns
    out = pd.DataFrame(np.nan, index=proteins, columns=list(COXPH_COLUMNS[:4]))
    out["n"] = len(c.time)
    out["n_events"] = int(c.event.sum())
    out["failure"] = ""
    finite = np.isfinite(values)
    complete = finite.all(axis=0)
    jobs = [(np.flatnonzero(complete), np.ones(len(c.time), dtype=bool))]
    for j in np.flatnonzero(~complete):  # proteins with missing activities: their own samples
        keep = finite[:, j]
        if np.isinf(values[:, j]).any():
            out.iloc[j, out.columns.get_loc("failure")] = "data contains an infinite predictor"
            continue
        jobs.append((np.array([j]), keep))
    for cols, keep in jobs:
        if cols.size == 0:
            continue
        if c.event[keep].sum() == 0 or keep.sum() < 2:
            out.iloc[cols, out.columns.get_loc("failure")] = "no event among the samples with activity"
            continue
        fit = cox_fit(c.time[keep], c.event[keep], c.design[keep], values[np.ix_(keep, cols)], ties=ties)
        z = fit.z[:, -1]
        ok = fit.failure == 0
        out.iloc[cols, 0] = np.where(ok, z, np.nan)
        out.iloc[cols, 1] = np.where(ok, special.chdtrc(1, z * z), np.nan)
        out.iloc[cols, 2] = np.where(ok, fit.coef[:, -1], np.nan)
        out.iloc[cols, 3] = np.where(ok, fit.se[:, -1], np.nan)
        out.iloc[cols, 4] = int(keep.sum())
        out.iloc[cols, 5] = int(c.event[keep].sum())
        for i, code in zip(cols, fit.failure, strict=True):
            if code:
                names = [*c.design_names, "activity"]
                text = FAILURES[int(code)]
                if code == 2:
                    row = fit.infinite[list(cols).index(i)]
                    text = f"Loglik converged before variable {', '.join(n for n, b in zip(names, row, strict=True) if b)}; coefficient may be infinite"
                out.iloc[i, out.columns.get_loc("failure")] = text
    failed = out["failure"] != ""
    if failed.any():
        shown = "; ".join(f"{p}: {why}" for p, why in out.loc[failed, "failure"].iloc[:5].items())
        logger.info(
            "coxph: no risk score for %d proteins (%s%s)",
            int(failed.sum()),
            shown,
            "; ..." if failed.sum() > 5 else "",
        )
    out["n"] = out["n"].astype(np.int64)
    out["n_events"] = out["n_events"].astype(np.int64)
    out.index.name = "protein"
    return out
