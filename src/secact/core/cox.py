"""Cox proportional hazards fits of many activities at once (arrays only, no AnnData).

One model per protein, ``Surv(time, event) ~ covariates + activity``, fitted by the same
Newton-Raphson iteration as R's ``survival::coxph`` (``coxph.fit`` / ``coxfit6``, survival
3.5) for all proteins together: the covariates are shared, the activity column differs.

What is reproduced, so that coefficients, Wald z and p-values agree with R to rounding and
the fits R rejects are rejected here too:

- ``timefix``: times closer than ``sqrt(machine eps)`` (absolute or relative to the mean
  absolute time) are made equal first (``aeqSurv``);
- ties by Efron's rule (R's default) or Breslow's;
- columns whose values are not all in {-1, 0, 1} are centred and scaled by their mean
  absolute deviation (``coxfit6``; ``nocenter = c(-1, 0, 1)``); scaling matters for the
  Cholesky tolerance only;
- start at 0; one Newton step per iteration; a step that lowers the log partial likelihood
  or makes it non-finite is halved towards the last good point (``(new + h * old) / (h +
  1)``, ``h`` growing while it fails); converged when ``|1 - loglik_old / loglik_new| <=
  eps`` (``1e-9``), at most ``iter_max`` (20) iterations;
- the Cholesky decomposition of ``coxfit6`` (``cholesky2``, ``chsolve2``): a pivot below
  ``toler_chol`` (``eps ** 0.75``) times the largest diagonal marks the variable singular:
  its step is 0, its variance 0, its coefficient ``NaN`` (R: ``NA``, no warning);
- the warnings ``coxph`` gives, for which SecAct R reports ``NA``: "Ran out of iterations
  and did not converge", and "Loglik converged before variable ...; coefficient may be
  infinite" (``|u %*% var| > eps`` and ``> toler_inf * |coef|``, ``toler_inf = sqrt(eps)``).

The iteration keeps R's order of operations but not its order of summation, so results
differ from R's by rounding (about 1e-13 relative), never by an iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FAILURES",
    "CoxFit",
    "KaplanMeier",
    "Separation",
    "best_separation",
    "cox_fit",
    "kaplan_meier",
    "logrank",
    "timefix",
]

#: codes of :attr:`CoxFit.failure` -> what R says (``0``: the fit is fine)
FAILURES = {
    0: "",
    1: "Ran out of iterations and did not converge",
    2: "Loglik converged before a variable; coefficient may be infinite",
    3: "activity is singular (constant, or a combination of the covariates): coefficient NA",
}


@dataclass
class CoxFit:
    """The fits of ``P`` models with ``V`` variables (covariates first, the activity last)."""

    coef: np.ndarray
    """``(P, V)`` coefficients; ``NaN`` for a singular variable."""
    var: np.ndarray
    """``(P, V, V)`` variance matrices (inverse information; 0 for singular variables)."""
    loglik: np.ndarray
    """``(P, 2)`` log partial likelihood at 0 and at the estimate."""
    iterations: np.ndarray
    """``(P,)`` Newton-Raphson iterations used."""
    failure: np.ndarray
    """``(P,)`` codes of :data:`FAILURES`; ``1`` and ``2`` are R's warnings."""
    infinite: np.ndarray
    """``(P, V)`` the variables R's warning names (code ``2``)."""

    @property
    def se(self) -> np.ndarray:
        """``(P, V)`` standard errors."""
        return np.sqrt(np.einsum("pii->pi", self.var))

    @property
    def z(self) -> np.ndarray:
        """``(P, V)`` Wald z (``coef / se``, ``NaN`` for a singular variable)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.coef / self.se


def timefix(time: np.ndarray) -> np.ndarray:
    """R's ``aeqSurv``: times within ``sqrt(machine eps)`` of each other made equal."""
    tol = np.sqrt(np.finfo(np.float64).eps)
    y = np.unique(time[np.isfinite(time)])
    if y.size < 2:
        return time
    dy = np.diff(y)
    tied = (dy <= tol) | (dy / np.mean(np.abs(y)) <= tol)
    if not tied.any():
        return time
    cuts = y[np.concatenate([[True], ~tied])]
    return cuts[np.searchsorted(cuts, time, side="right") - 1]


# ----------------------------------------------------------------------------------------------
# coxfit6's Cholesky routines, over a stack of matrices
# ----------------------------------------------------------------------------------------------
def _cholesky2(m: np.ndarray, toler: float) -> tuple[np.ndarray, np.ndarray]:
    """LDL' of each ``(V, V)`` matrix in ``m`` (``(P, V, V)``) as ``cholesky2``: D on the
    diagonal, L below it; singular pivots set to 0. Returns the factor and the rank."""
    p, n, _ = m.shape
    m = m.copy()
    iu = np.triu_indices(n, 1)
    m[:, iu[1], iu[0]] = m[:, iu[0], iu[1]]  # work from the upper triangle, as R fills it
    diag = np.einsum("pii->pi", m)
    eps = diag.max(axis=1, initial=0.0)
    eps = np.where(eps > 0, eps * toler, toler)
    rank = np.zeros(p, dtype=np.int64)
    nonneg = np.ones(p, dtype=np.int64)
    for i in range(n):
        pivot = m[:, i, i].copy()
        bad = ~np.isfinite(pivot) | (pivot < eps)
        nonneg[bad & (pivot < -8 * eps)] = -1
        m[bad, i, i] = 0.0
        ok = ~bad
        rank += ok
        if not ok.any():
            continue
        safe = np.where(ok, pivot, 1.0)
        for j in range(i + 1, n):
            temp = m[:, j, i] / safe
            m[:, j, i] = np.where(ok, temp, m[:, j, i])
            m[:, j, j] -= np.where(ok, temp * temp * pivot, 0.0)
            for k in range(j + 1, n):
                m[:, k, j] -= np.where(ok, temp * m[:, k, i], 0.0)
    return m, rank * nonneg


def _chsolve2(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Solve with the factor of :func:`_cholesky2` (``chsolve2``; singular components 0)."""
    y = y.copy()
    n = y.shape[1]
    for i in range(n):
        for j in range(i):
            y[:, i] -= y[:, j] * f[:, i, j]
    for i in range(n - 1, -1, -1):
        d = f[:, i, i]
        zero = d == 0
        temp = y[:, i] / np.where(zero, 1.0, d)
        for j in range(i + 1, n):
            temp -= y[:, j] * f[:, j, i]
        y[:, i] = np.where(zero, 0.0, temp)
    return y


def _chinv2(f: np.ndarray) -> np.ndarray:
    """Inverse of the original matrices from the factor (``chinv2``): the inverse over the
    non-singular variables, 0 in the rows and columns of singular ones."""
    n = f.shape[1]
    d = np.einsum("pii->pi", f)
    good = d > 0
    lower = np.tril(f, -1) + np.eye(n)  # unit lower factor
    # singular variables do not take part: their rows and columns of L are dropped
    lower = np.where(good[:, :, None] & good[:, None, :], lower, np.eye(n))
    dinv = np.where(good, 1.0 / np.where(good, d, 1.0), 0.0)
    linv = np.linalg.inv(lower)
    return np.einsum("pki,pk,pkj->pij", linv, dinv, linv)


# ----------------------------------------------------------------------------------------------
# the log partial likelihood, its score and information (coxfit6_iter)
# ----------------------------------------------------------------------------------------------
@dataclass
class _Risk:
    """Sorted data and the tie structure, shared by every protein."""

    status: np.ndarray  # (n,) 0/1, sorted by time
    starts: np.ndarray  # first row of each distinct time
    row_group: np.ndarray  # (n,) the time group of each row
    dead_rows: np.ndarray  # rows with an event
    dead_starts: np.ndarray  # first of dead_rows of each time group with deaths
    death_groups: np.ndarray  # the time groups with deaths
    term_group: np.ndarray  # (D,) the time group of each death term
    term_dgroup: np.ndarray  # (D,) the same as an index into death_groups
    term_starts: np.ndarray  # first term of each time group with deaths
    term_frac: np.ndarray  # (D,) k / d (Efron) or 1 (Breslow)
    term_weight: np.ndarray  # (D,) weight of each term


def _risk(time: np.ndarray, status: np.ndarray, method: str) -> _Risk:
    first = np.concatenate([[True], time[1:] != time[:-1]])
    starts = np.flatnonzero(first)
    row_group = np.cumsum(first) - 1
    deaths = np.add.reduceat(status, starts)
    groups = np.flatnonzero(deaths > 0)
    d = deaths[groups].astype(np.int64)
    dead_rows = np.flatnonzero(status > 0)
    dead_starts = np.cumsum(d) - d
    if method == "efron":
        dgroup = np.repeat(np.arange(groups.size), d)
        within = np.arange(d.sum()) - np.repeat(np.cumsum(d) - d, d) + 1
        frac = within / np.repeat(d, d)
        weight = np.ones(d.sum())  # deadwt / ndead with unit case weights
        term_starts = np.cumsum(d) - d
    else:
        dgroup, frac, weight = np.arange(groups.size), np.ones(groups.size), d.astype(np.float64)
        term_starts = np.arange(groups.size)
    return _Risk(
        status,
        starts,
        row_group,
        dead_rows,
        dead_starts,
        groups,
        groups[dgroup],
        dgroup,
        term_starts,
        frac,
        weight,
    )


def _revcumsum(x: np.ndarray) -> np.ndarray:
    return np.cumsum(x[:, ::-1], axis=1)[:, ::-1]


def _iterate(
    beta: np.ndarray, z: np.ndarray, act: np.ndarray, rs: _Risk, dead_x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log partial likelihood ``(P,)``, score ``(P, V)`` and information ``(P, V, V)`` at
    ``beta`` (``(P, V)``) for shared covariates ``z`` (``(n, k)``) and one activity per model
    (``act``, ``(P, n)``), all sorted by time and centred; ``dead_x`` (``(P, V)``): the
    covariates summed over the events.

    With ``q`` the terms of the deaths (Efron: a death time with ``d`` deaths gives ``d``
    terms, the deaths' risk counted ``k / d``), the information is
    ``sum_q w_q (C_q / S_q - m_q m_q')``; its first part is ``sum_rows omega_row risk_row x
    x'`` where ``omega`` collects ``w_q / S_q`` over the terms whose risk set holds the row,
    so it is a product with the rows' covariates (no per-term matrices). Every variable is
    handled as its own ``(P, n)`` array (contiguous sums, no ``(P, n, V)`` tensors).
    """
    k = z.shape[1]
    p = act.shape[0]
    dead = rs.status.astype(bool)
    g, dg, f, w = rs.term_group, rs.term_dgroup, rs.term_frac, rs.term_weight
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        zbeta = beta[:, k:] * act
        if k:
            zbeta += beta[:, :k] @ z.T
        risk = np.exp(zbeta)

        def at_terms(values: np.ndarray) -> np.ndarray:
            """Per term: the sum over the risk set, the term's share of its deaths only."""
            at = _revcumsum(np.add.reduceat(values, rs.starts, axis=1))
            if not g.size:
                return at[:, :0]
            died = np.add.reduceat(values[:, rs.dead_rows], rs.dead_starts, axis=1)
            return at[:, g] - (1 - f) * died[:, dg]

        denom = at_terms(risk)
        columns = [z[:, j] for j in range(k)] + [act]
        means = [at_terms(risk * col) / denom for col in columns]
        loglik = zbeta[:, rs.dead_rows].sum(axis=1) - np.log(denom) @ w
        u = dead_x - np.stack([m @ w for m in means], axis=1)
        # omega: sum of w / S over the terms at or before the row's time, less, for a death,
        # the part (1 - f) of its own time's terms that leave it out
        alpha = np.zeros((p, rs.starts.size))
        gamma = np.zeros((p, rs.starts.size))
        if g.size:
            alpha[:, rs.death_groups] = np.add.reduceat(w / denom, rs.term_starts, axis=1)
            gamma[:, rs.death_groups] = np.add.reduceat(w * (1 - f) / denom, rs.term_starts, axis=1)
        omega = np.cumsum(alpha, axis=1)[:, rs.row_group] - dead * gamma[:, rs.row_group]
        q = omega * risk
        imat = np.empty((p, k + 1, k + 1))
        if k:
            zz = (z[:, :, None] * z[:, None, :]).reshape(len(z), k * k)
            imat[:, :k, :k] = (q @ zz).reshape(-1, k, k)
            imat[:, :k, k] = imat[:, k, :k] = (q * act) @ z
        imat[:, k, k] = (q * act * act).sum(axis=1)
        for i in range(k + 1):
            for j in range(i + 1):
                imat[:, i, j] -= (means[i] * means[j]) @ w
                imat[:, j, i] = imat[:, i, j]
    return loglik, u, imat


# ----------------------------------------------------------------------------------------------
# the fit
# ----------------------------------------------------------------------------------------------
def _scale(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale the columns (values along ``axis``) not all in {-1, 0, 1}, as coxfit6;
    a constant column becomes exactly 0."""
    zero_one = np.all((x == -1) | (x == 0) | (x == 1), axis=axis, keepdims=True)
    mean = np.where(zero_one, 0.0, x.mean(axis=axis, keepdims=True))
    xc = x - mean
    spread = np.abs(xc).mean(axis=axis, keepdims=True)
    scale = np.where(zero_one | (spread <= 0), 1.0, 1.0 / np.where(spread > 0, spread, 1.0))
    xc = xc * scale
    constant = (np.ptp(x, axis=axis, keepdims=True) == 0) & ~zero_one
    xc = np.where(constant, 0.0, xc)
    return xc, np.squeeze(scale, axis=axis)


def cox_fit(
    time: np.ndarray,
    event: np.ndarray,
    covariates: np.ndarray,
    activity: np.ndarray,
    *,
    ties: str = "efron",
    eps: float = 1e-9,
    toler_chol: float | None = None,
    iter_max: int = 20,
    toler_inf: float | None = None,
    max_elements: int = 2**23,
) -> CoxFit:
    """Fit ``Surv(time, event) ~ covariates + activity[:, p]`` for every column ``p``.

    Parameters
    ----------
    time, event
        ``(n,)`` follow-up times (finite) and events (1: event, 0: censored).
    covariates
        ``(n, k)`` design columns shared by every model (``k`` may be 0), e.g. numbers and
        0/1 indicators of factor levels.
    activity
        ``(n, P)`` one column per model (finite values).
    ties
        ``"efron"`` (R's default) or ``"breslow"``.
    eps, toler_chol, iter_max, toler_inf
        ``survival::coxph.control`` (defaults: ``1e-9``, ``eps_machine ** 0.75``, 20,
        ``sqrt(eps)``).
    max_elements
        Models are fitted in chunks of about this many ``n * V`` elements (memory).

    Returns
    -------
    CoxFit
        Coefficients etc. with the activity as the last variable.
    """
    if ties not in ("efron", "breslow"):
        raise ValueError(f"ties must be 'efron' or 'breslow', got {ties!r}.")
    toler_chol = np.finfo(np.float64).eps ** 0.75 if toler_chol is None else toler_chol
    toler_inf = np.sqrt(eps) if toler_inf is None else toler_inf
    time = timefix(np.asarray(time, dtype=np.float64))
    event = np.asarray(event, dtype=np.float64)
    covariates = np.asarray(covariates, dtype=np.float64).reshape(len(time), -1)
    activity = np.asarray(activity, dtype=np.float64)
    order = np.argsort(time, kind="stable")
    time, event = time[order], event[order]
    covariates, activity = covariates[order], activity[order]
    rs = _risk(time, event, ties)
    n, p = activity.shape
    v = covariates.shape[1] + 1
    step = max(1, int(max_elements // max(1, n * v)))
    parts = [
        _fit_chunk(covariates, activity[:, s : s + step], rs, eps, toler_chol, iter_max, toler_inf)
        for s in range(0, p, step)
    ]
    if not parts:
        empty = np.empty((0, v))
        return CoxFit(empty, np.empty((0, v, v)), np.empty((0, 2)), np.empty(0, int), np.empty(0, int), empty)
    return CoxFit(*(np.concatenate(arrays) for arrays in zip(*(_astuple(f) for f in parts), strict=True)))


def _astuple(f: CoxFit) -> tuple:
    return (f.coef, f.var, f.loglik, f.iterations, f.failure, f.infinite)


def _fit_chunk(cov, act, rs, eps, toler_chol, iter_max, toler_inf) -> CoxFit:
    p = act.shape[1]
    z, zscale = _scale(cov, axis=0)
    a, ascale = _scale(act.T, axis=1)
    scale = np.concatenate([np.broadcast_to(zscale, (p, zscale.size)), ascale[:, None]], axis=1)
    v = z.shape[1] + 1
    dead = rs.dead_rows
    dead_x = np.concatenate(
        [np.broadcast_to(z[dead].sum(axis=0), (p, v - 1)), a[:, dead].sum(axis=1)[:, None]], axis=1
    )
    beta = np.zeros((p, v))
    loglik0, u, imat = _iterate(beta, z, a, rs, dead_x)
    fac, flag = _cholesky2(imat, toler_chol)
    newbeta = beta + _chsolve2(fac, u)
    best = loglik0.copy()
    halving = np.zeros(p)
    done = np.zeros(p, dtype=bool)
    iters = np.zeros(p, dtype=np.int64)
    final_u, final_fac = u.copy(), fac.copy()
    if iter_max == 0 or not np.all(np.isfinite(loglik0)):
        raise NotImplementedError("iter_max=0 and non-finite initial log-likelihoods are not supported.")
    for it in range(1, iter_max + 1):
        live = np.flatnonzero(~done)
        if live.size == 0:
            break
        iters[live] = it
        newlk, u, imat = _iterate(newbeta[live], z, a[live], rs, dead_x[live])
        fac, flag_live = _cholesky2(imat, toler_chol)
        notfinite = ~np.isfinite(u).all(axis=1) | ~np.isfinite(imat).all(axis=(1, 2)) | ~np.isfinite(newlk)
        with np.errstate(divide="ignore", invalid="ignore"):
            conv = ~notfinite & (np.abs(1 - best[live] / newlk) <= eps)
        # converged: keep the new point
        c = live[conv]
        beta[c] = newbeta[c]
        best[c] = newlk[conv]
        final_u[c], final_fac[c], flag[c] = u[conv], fac[conv], flag_live[conv]
        done[c] = True
        # worse (or not finite): step halving towards the last good point
        worse = ~conv & (notfinite | (newlk < best[live]))
        w = live[worse]
        halving[w] += 1
        newbeta[w] = (newbeta[w] + halving[w, None] * beta[w]) / (halving[w, None] + 1.0)
        # better: a new Newton step
        better = ~conv & ~worse
        b = live[better]
        halving[b] = 0
        best[b] = newlk[better]
        step = _chsolve2(fac[better], u[better])
        beta[b] = newbeta[b]
        newbeta[b] = newbeta[b] + step
    failure = np.zeros(p, dtype=np.int64)
    out_of_iter = np.flatnonzero(~done)
    if out_of_iter.size:  # R recomputes at the last good point, then warns
        lk, u, imat = _iterate(beta[out_of_iter], z, a[out_of_iter], rs, dead_x[out_of_iter])
        best[out_of_iter] = lk
        final_u[out_of_iter] = u
        final_fac[out_of_iter], flag[out_of_iter] = _cholesky2(imat, toler_chol)
        failure[out_of_iter] = 1
    var = _chinv2(final_fac) * scale[:, :, None] * scale[:, None, :]
    coef = beta * scale
    u_orig = final_u / scale
    infs = np.abs(np.einsum("pv,pvw->pw", u_orig, var))
    infinite = ~np.isfinite(u_orig) | ((infs > eps) & (infs > toler_inf * np.abs(coef)))
    infinite[out_of_iter] = False
    failure[(failure == 0) & infinite.any(axis=1)] = 2
    singular = np.einsum("pii->pi", var) == 0
    coef = np.where(singular, np.nan, coef)
    failure[(failure == 0) & singular[:, -1]] = 3
    return CoxFit(coef, var, np.stack([loglik0, best], axis=1), iters, failure, infinite)


# ----------------------------------------------------------------------------------------------
# two groups: SecAct R's best separation, Kaplan-Meier curves, the log-rank test
# ----------------------------------------------------------------------------------------------
@dataclass
class Separation:
    """SecAct R's ``CoxPH_best_separation`` of one activity."""

    z: float
    """Wald z of the continuous activity."""
    threshold: float
    """The activity value whose split (``activity >= threshold``) gives the most extreme z
    in the direction of ``z``."""
    z_opt: float
    """Wald z of that split."""


def best_separation(
    time: np.ndarray, event: np.ndarray, covariates: np.ndarray, activity: np.ndarray, margin: int = 5
) -> Separation:
    """The best-separation threshold of one activity (``activity``: ``(n,)``).

    As SecAct R's ``CoxPH_best_separation``: the continuous fit first (a failed fit, as R
    flags by a warning or error, raises :class:`ValueError`); then, for each sorted activity
    value ``v[i]``, ``i`` from ``margin + 1`` to ``n - margin`` (1-based), the fit of the 0/1
    split ``activity >= v[i]``; failed splits are skipped; the first split with the largest z
    (if the continuous z is positive) or the smallest (otherwise) wins. All splits are
    fitted at once.
    """
    activity = np.asarray(activity, dtype=np.float64)
    n = activity.size
    cont = cox_fit(time, event, covariates, activity[:, None])
    if cont.failure[0] or not np.isfinite(cont.z[0, -1]):
        raise ValueError(FAILURES[int(cont.failure[0])] or "the activity is singular")
    z0 = float(cont.z[0, -1])
    values = np.sort(activity)[margin : n - margin]
    if values.size == 0:
        return Separation(z0, np.nan, np.nan)
    splits = (activity[:, None] >= values[None, :]).astype(np.float64)
    fit = cox_fit(time, event, covariates, splits)
    z = fit.z[:, -1]
    z = np.where((fit.failure == 0) & np.isfinite(z), z, np.nan)
    if np.isnan(z).all():
        return Separation(z0, np.nan, np.nan)
    best = int(np.nanargmax(z) if z0 > 0 else np.nanargmin(z))  # the first of equals, as R's loop
    return Separation(z0, float(values[best]), float(z[best]))


@dataclass
class KaplanMeier:
    """A Kaplan-Meier curve at the distinct times (events or censorings) of one group."""

    time: np.ndarray
    n_risk: np.ndarray
    n_event: np.ndarray
    n_censor: np.ndarray
    surv: np.ndarray


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> KaplanMeier:
    """The Kaplan-Meier estimate (R's ``survfit``, with its ``timefix``)."""
    time = timefix(np.asarray(time, dtype=np.float64))
    event = np.asarray(event, dtype=np.float64)
    times, inverse = np.unique(time, return_inverse=True)
    n_event = np.bincount(inverse, weights=event, minlength=times.size)
    n_all = np.bincount(inverse, minlength=times.size).astype(np.float64)
    n_risk = np.cumsum(n_all[::-1])[::-1]
    surv = np.cumprod(1.0 - n_event / n_risk)
    return KaplanMeier(times, n_risk, n_event, n_all - n_event, surv)


def logrank(time: np.ndarray, event: np.ndarray, group: np.ndarray) -> tuple[float, float]:
    """The log-rank test of two groups (R's ``survdiff``, ``rho = 0``): chi-square and p."""
    from scipy import special

    time = timefix(np.asarray(time, dtype=np.float64))
    event = np.asarray(event, dtype=np.float64)
    group = np.asarray(group, dtype=bool)
    times, inverse = np.unique(time, return_inverse=True)
    d = np.bincount(inverse, weights=event, minlength=times.size)
    d1 = np.bincount(inverse, weights=event * group, minlength=times.size)
    n = np.cumsum(np.bincount(inverse, minlength=times.size)[::-1])[::-1].astype(np.float64)
    n1 = np.cumsum(np.bincount(inverse, weights=group.astype(np.float64), minlength=times.size)[::-1])[::-1]
    expected = d * n1 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(n > 1, d * (n1 / n) * (1 - n1 / n) * (n - d) / (n - 1), 0.0)
    chisq = float((d1.sum() - expected.sum()) ** 2 / var.sum())
    return chisq, float(special.chdtrc(1, chisq))
