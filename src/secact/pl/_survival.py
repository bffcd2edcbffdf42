"""Kaplan-Meier curves of a cohort split by one protein's activity: ``secact.pl.survival``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._docs import doc_params
from .._errors import ParamError
from ._utils import DOWN, UP, doc_figure, doc_returns, finish, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["SurvivalSplit", "survival", "survival_split"]


@dataclass
class SurvivalSplit:
    """A cohort split in two by one protein's activity (what :func:`survival` draws)."""

    protein: str
    z: float
    """Wald z of the continuous activity (Cox, with the covariates)."""
    threshold: float
    """SecAct R's best-separation threshold (``NaN`` when given as ``threshold=``)."""
    cutoff: float
    """The split: high = activity > cutoff (R: the threshold rounded to 3 decimals)."""
    high: pd.Series
    """Per sample: in the high group."""
    time: np.ndarray
    event: np.ndarray
    logrank_chisq: float
    logrank_p: float


def survival_split(
    activity: Any,
    clinical: pd.DataFrame,
    protein: str,
    *,
    time: str = "Time",
    event: str = "Event",
    covariates: Sequence[str] | None = None,
    threshold: float | None = None,
    margin: int = 5,
) -> SurvivalSplit:
    """Split the cohort as SecAct R's ``SecAct.survival.plot`` does (see :func:`survival`)."""
    from .._checks import check_positive_int
    from .._cohort import cohort
    from ..core.cox import best_separation, logrank

    c = cohort(activity, clinical, time=time, event=event, covariates=covariates)
    if protein not in c.activity.columns:
        raise ParamError(
            "{protein=} is not among the {n} proteins of the activity (e.g. {some}).",
            protein=protein,
            n=c.activity.shape[1],
            some=c.activity.columns[:5].tolist(),
        )
    values = c.activity[protein].to_numpy()
    keep = np.isfinite(values)
    t, e, design, values = c.time[keep], c.event[keep], c.design[keep], values[keep]
    samples = c.activity.index[keep]
    death_rate = e.sum() / e.size
    if death_rate < 0.1:
        raise ParamError(
            "only {rate:.1%} of the samples have an event ({event=}); SecAct R's survival plot "
            "needs at least 10%.",
            rate=death_rate,
            event=event,
        )
    if threshold is None:
        margin = check_positive_int(margin, "margin")
        try:
            sep = best_separation(t, e, design, values, margin)
        except ValueError as err:
            msg = f"the Cox fit of {protein!r}'s activity failed ({err}); pass threshold= to split anyway."
            raise ValueError(msg) from err
        if not np.isfinite(sep.threshold):
            msg = (
                f"no split of {protein!r}'s activity with at least {margin} samples per side could be "
                "fitted; pass threshold= (or a smaller margin)."
            )
            raise ValueError(msg)
        z, found, cutoff = sep.z, sep.threshold, float(np.round(sep.threshold, 3))
    else:
        if not np.isfinite(threshold):
            raise ParamError("{threshold=} must be a finite number.", threshold=threshold)
        from ..core.cox import cox_fit

        z, found, cutoff = float(cox_fit(t, e, design, values[:, None]).z[0, -1]), np.nan, float(threshold)
    high = values > cutoff
    if high.all() or not high.any():
        msg = f"the cutoff {cutoff:g} leaves every sample in one group; pass another threshold=."
        raise ValueError(msg)
    chisq, p = logrank(t, e, high)
    return SurvivalSplit(protein, z, found, cutoff, pd.Series(high, index=samples), t, e, chisq, p)


def _format_p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


@doc_params(figure=doc_figure, returns=doc_returns)
def survival(
    activity: Any,
    clinical: pd.DataFrame,
    protein: str,
    *,
    time: str = "Time",
    event: str = "Event",
    covariates: Sequence[str] | None = None,
    threshold: float | None = None,
    margin: int = 5,
    xlabel: str | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (4.6, 3.6),
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
    save: str | os.PathLike | None = None,
) -> Axes | Figure | None:
    """Kaplan-Meier curves of the samples with high (red) and low (blue) activity of a protein.

    The counterpart of SecAct R's ``SecAct.survival.plot``: the cohort is split at SecAct R's
    best-separation threshold (``CoxPH_best_separation``: of the splits ``activity >= v``
    over the sorted activities ``v``, leaving at least ``margin`` samples on each side,
    the one whose Cox z, adjusted for the covariates, is the largest in the direction of the
    continuous activity's z); as in R the groups are then ``activity > cutoff`` with the
    threshold rounded to 3 decimals, and a cohort with fewer than 10% events is refused.
    The legend gives each group's size; the log-rank p-value of the two groups and the Cox
    z of the continuous activity are written in the plot; censored samples are marked ``+``.
    Thresholds, curves and p-values equal R's (``tests/data/coxph``). One difference: R reads
    the activity's z by its position in the coefficient table, which is another coefficient
    when a covariate is a factor; here it is always the activity's.

    Parameters
    ----------
    activity
        As for :func:`secact.tl.coxph`: a :class:`secact.ActivityResult`, or a samples x
        proteins DataFrame or AnnData.
    clinical
        Samples x clinical variables (time, event, covariates), indexed by sample.
    protein
        The protein whose activity splits the cohort.
    time, event, covariates
        As for :func:`secact.tl.coxph` (covariates: default every other column).
    threshold
        Split at this activity instead (high: ``activity > threshold``).
    margin
        Fewest samples on either side of a candidate split (R: 5).
    xlabel
        Label of the time axis (default: the ``time`` column's name).
    title
        Default: the protein.
    figsize
        Figure size in inches.
    {figure}

    Returns
    -------
    {returns}
    """
    from ..core.cox import kaplan_meier

    split = survival_split(
        activity,
        clinical,
        protein,
        time=time,
        event=event,
        covariates=covariates,
        threshold=threshold,
        margin=margin,
    )
    fig, ax, created = new_axes(ax, figsize)
    high = split.high.to_numpy()
    for label, mask, colour in (("High", high, UP), ("Low", ~high, DOWN)):
        km = kaplan_meier(split.time[mask], split.event[mask])
        t = np.concatenate([[0.0], km.time])
        s = np.concatenate([[1.0], km.surv])
        ax.step(t, s, where="post", color=colour, linewidth=1.6, label=f"{label} (n={int(mask.sum())})")
        censored = km.n_censor > 0
        ax.plot(km.time[censored], km.surv[censored], "+", color=colour, markersize=7, markeredgewidth=1.2)
    ax.set_ylim(0, 1.04)
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel if xlabel is not None else time)
    ax.set_ylabel("Survival probability")
    ax.set_title(title if title is not None else split.protein)
    how = f"cutoff {split.cutoff:g}" + (" (best separation)" if np.isfinite(split.threshold) else "")
    legend = ax.legend(
        frameon=False, loc="upper right", fontsize=9, title=f"{split.protein} activity", title_fontsize=9
    )
    legend.set_zorder(4)
    ax.text(
        0.97,
        0.70,
        f"log-rank p = {_format_p(split.logrank_p)}\nCox z = {split.z:.2f}\n{how}",
        transform=ax.transAxes,
        fontsize=8.5,
        va="top",
        ha="right",
        zorder=4,
        bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.85", "alpha": 0.9},
    )
    ax.spines[["top", "right"]].set_visible(False)
    return finish(fig, ax, created=created, show=show, return_fig=return_fig, save=save)
