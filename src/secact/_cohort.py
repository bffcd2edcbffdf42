"""A survival cohort: activity and clinical data matched by sample and validated.

Shared by :func:`secact.tl.coxph` and :func:`secact.pl.survival` (SecAct R's
``SecAct.coxph.regression`` and ``SecAct.survival.plot`` match the two tables the same way).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._errors import ParamError

__all__ = ["Cohort", "activity_table", "cohort"]

logger = logging.getLogger("secact")


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
    from ._infer import ActivityResult

    if isinstance(activity, ActivityResult):
        table = activity.zscore.T
    elif isinstance(activity, pd.DataFrame):
        table = activity
    elif hasattr(activity, "obs_names") and hasattr(activity, "X"):
        from ._results import dense

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
