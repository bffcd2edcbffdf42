"""Survival regression of a bulk cohort on protein activity: ``secact.tl.coxph``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from .._errors import ParamError

if TYPE_CHECKING:
    from anndata import AnnData

    from .._infer import ActivityResult

__all__ = ["COXPH_COLUMNS", "Cohort", "cohort", "coxph"]

logger = logging.getLogger("secact")

#: The columns of the table :func:`coxph` returns (one row per protein).
COXPH_COLUMNS = ("risk_z", "pvalue", "coef", "se", "n", "n_events", "failure")


@dataclass
class Cohort:
    """Activity and clinical data of the samples both tables hold (in the clinical order)."""

    activity: pd.DataFrame
    """Samples x proteins."""
    time: np.ndarray
    event: np.ndarray
    design: np.ndarray
    """Samples x covariate columns (numbers; 0/1 indicators for the levels of a factor)."""
    design_names: list[str]


def activity_table(activity: Any) -> pd.DataFrame:
    """Samples x proteins activity (z-scores) from an ActivityResult, DataFrame or AnnData."""
    from .._infer import ActivityResult

    if isinstance(activity, ActivityResult):
        table = activity.zscore.T
    elif isinstance(activity, pd.DataFrame):
        table = activity
    elif hasattr(activity, "obs_names") and hasattr(activity, "X"):
        from .._results import dense

        table = pd.DataFrame(dense(activity.X), index=activity.obs_names, columns=activity.var_names)
    else:
        raise ParamError(
            "{activity=...} must be a secact.ActivityResult (from secact.infer), a samples x "
            "proteins DataFrame or a samples x proteins AnnData (e.g. secact.get.activity), "
            "got {kind}.",
            kind=type(activity).__name__,
        )
    table = table.copy()
    table.index = table.index.astype(str)
    table.columns = table.columns.astype(str)
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()].unique()[:5].tolist()
        raise ParamError("{activity=...} names samples more than once: {dup}.", dup=dup)
    try:
        return table.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ParamError("{activity=...} must hold numbers (activities).") from err


def _design(frame: pd.DataFrame, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Covariate columns as R's ``model.matrix`` makes them (treatment contrasts)."""
    columns, labels = [], []
    for name in names:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col):
            columns.append(col.to_numpy(dtype=np.float64))
            labels.append(f"{name}TRUE")
        elif pd.api.types.is_numeric_dtype(col):
            columns.append(col.to_numpy(dtype=np.float64))
            labels.append(str(name))
        else:  # a factor: one 0/1 column per level but the first
            if isinstance(col.dtype, pd.CategoricalDtype):
                levels = [lv for lv in col.cat.categories if (col == lv).any()]
            else:
                levels = sorted(col.astype(str).unique())
                col = col.astype(str)
            for level in levels[1:]:
                columns.append((col == level).to_numpy(dtype=np.float64))
                labels.append(f"{name}{level}")
    design = np.column_stack(columns) if columns else np.empty((len(frame), 0))
    return design, labels


def cohort(
    activity: Any,
    clinical: pd.DataFrame,
    *,
    time: str = "Time",
    event: str = "Event",
    covariates: Sequence[str] | None = None,
) -> Cohort:
    """Match activity and clinical data by sample; validate times, events and covariates."""
    table = activity_table(activity)
    if not isinstance(clinical, pd.DataFrame):
        raise ParamError(
            "{clinical=...} must be a DataFrame indexed by sample, got {kind}.", kind=type(clinical).__name__
        )
    cols = list(map(str, clinical.columns))[:20]
    if time not in clinical.columns:
        raise ParamError("{time=} is not a column of clinical; its columns: {cols}.", time=time, cols=cols)
    if event not in clinical.columns:
        raise ParamError("{event=} is not a column of clinical; its columns: {cols}.", event=event, cols=cols)
    if covariates is None:  # R: Surv(Time, Event) ~ . (every other column)
        covariates = [c for c in clinical.columns if c not in (time, event)]
    else:
        covariates = [covariates] if isinstance(covariates, str) else list(covariates)
        missing = [c for c in covariates if c not in clinical.columns or c in (time, event)]
        if missing:
            raise ParamError(
                "{covariates=} names {missing}, which are not covariate columns of clinical "
                "(time and event excluded); its columns: {cols}.",
                missing=missing,
                cols=list(map(str, clinical.columns))[:20],
                covariates=covariates,
            )
    clin = clinical.copy()
    clin.index = clin.index.astype(str)
    if clin.index.has_duplicates:
        dup = clin.index[clin.index.duplicated()].unique()[:5].tolist()
        raise ParamError("{clinical=...} names samples more than once: {dup}.", dup=dup)
    shared = clin.index[clin.index.isin(table.index)]  # R: intersect(rownames(surv), samples)
    if len(shared) == 0:
        hint = ""
        if clin.index.isin(table.columns.astype(str)).any():
            hint = " The activity's columns name the samples: pass it as samples x proteins (activity.T)."
        raise ParamError(
            "no sample is in both {activity=...} (rows: {a}) and {clinical=...} (index: {c}); "
            "both must be indexed by sample.{hint}",
            a=table.index[:3].tolist(),
            c=clin.index[:3].tolist(),
            hint=hint,
        )
    clin = clin.loc[shared, [time, event, *covariates]]
    incomplete = clin.isna().any(axis=1)
    if incomplete.any():  # R's coxph drops them (na.omit)
        logger.info("coxph: %d samples with missing clinical values are left out", int(incomplete.sum()))
        clin = clin.loc[~incomplete]
    try:
        t = clin[time].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ParamError("clinical[{time=}] must hold numbers (follow-up times).", time=time) from err
    if not np.isfinite(t).all():
        raise ParamError("clinical[{time=}] holds infinite times.", time=time)
    e = clin[event]
    try:
        values = set(pd.unique(e.astype(np.float64))) if not pd.api.types.is_bool_dtype(e) else {0.0, 1.0}
    except (TypeError, ValueError):
        values = {str(v) for v in pd.unique(e)}
    if not values <= {0.0, 1.0}:
        raise ParamError(
            "clinical[{event=}] must be 1 (event, e.g. death) or 0 (censored), or True / False; "
            "found {values}{hint}.",
            event=event,
            values=sorted(float(v) if isinstance(v, float) else v for v in values)[:5],
            hint=" (R's 1 = censored, 2 = event coding: subtract 1)" if values == {1.0, 2.0} else "",
        )
    ev = e.to_numpy(dtype=np.float64)
    if ev.sum() == 0:
        raise ParamError("clinical[{event=}] holds no event among the matched samples.", event=event)
    design, names = _design(clin, covariates)
    logger.info(
        "coxph: %d samples in both tables (%d with activity, %d with clinical data)",
        len(shared),
        len(table),
        len(clinical),
    )
    return Cohort(table.loc[clin.index], t, ev, design, names)


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
