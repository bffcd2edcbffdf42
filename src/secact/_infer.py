"""Bulk (table) activity inference: :func:`secact.infer`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from fast_array_utils.conv import to_dense

from ._docs import doc_inference, doc_params, doc_signature
from ._errors import ParamError
from ._logging import elapsed, hint, logger
from ._results import STATS
from .core.backend import resolve_backend
from .core.params import InferenceParams
from .core.pipeline import infer_matrix
from .core.plan import make_plan
from .datasets._signatures import SIGNATURES, _signature

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["ActivityResult", "infer"]


@dataclass
class ActivityResult:
    """Activity of secreted proteins: four proteins x samples tables and the run's parameters.

    Bulk results keep SecAct R's orientation (proteins x samples, what
    ``SecAct.activity.inference`` returns), so they compare with R's tables directly;
    :meth:`to_anndata` gives the observations x proteins layout used on AnnData everywhere
    else (see :mod:`secact._results`).

    Attributes
    ----------
    beta
        Ridge regression coefficients.
    se
        Standard errors (permutation standard deviation of beta, or its exact value).
    zscore
        ``(beta - mean of permuted beta) / se``: the activity score.
    pvalue
        Permutation (or two-sided normal) p-values.
    params
        The parameters of the run.
    """

    beta: pd.DataFrame
    se: pd.DataFrame
    zscore: pd.DataFrame
    pvalue: pd.DataFrame
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        p, m = self.beta.shape
        return f"ActivityResult({p} proteins x {m} samples; method={self.params.get('method')!r})"

    def __iter__(self):
        return iter((self.beta, self.se, self.zscore, self.pvalue))

    def to_anndata(self) -> AnnData:
        """Samples x proteins AnnData: ``X`` = zscore, layers ``beta``, ``se``, ``pvalue``."""
        import anndata as ad

        adata = ad.AnnData(
            X=self.zscore.T.to_numpy(),
            obs=pd.DataFrame(index=self.beta.columns.astype(str)),
            var=pd.DataFrame(index=self.beta.index.astype(str)),
            layers={k: getattr(self, k).T.to_numpy() for k in ("beta", "se", "pvalue")},
        )
        adata.uns["secact"] = {"params": dict(self.params)}
        return adata


def _as_frame(profile, name: str) -> pd.DataFrame:
    """A genes x samples float DataFrame from a DataFrame, Series or AnnData (samples x genes)."""
    from anndata import AnnData

    if isinstance(profile, AnnData):
        from .io import resolve

        with resolve(profile) as inp:
            x = np.asarray(to_dense(inp.in_memory_matrix()))
            frame = pd.DataFrame(x.T, index=inp.var_names.astype(str), columns=inp.obs_names.astype(str))
    elif isinstance(profile, pd.Series):
        frame = profile.to_frame(name=profile.name if profile.name is not None else "sample")
    elif isinstance(profile, pd.DataFrame):
        frame = profile
    else:
        msg = (
            f"{name} must be a genes x samples pandas DataFrame (gene symbols as index), a Series, "
            f"or an AnnData (samples x genes); got {type(profile).__name__}."
        )
        raise TypeError(msg)
    if frame.shape[1] == 0:
        msg = f"{name} has no samples (columns)."
        raise ValueError(msg)
    if frame.shape[0] == 0:
        msg = f"{name} has no genes (rows)."
        raise ValueError(msg)
    if frame.columns.has_duplicates:
        dup_cols = list(frame.columns[frame.columns.duplicated()][:5])
        msg = f"{name} has duplicated sample names {dup_cols}; make them unique."
        raise ValueError(msg)
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        msg = (
            f"{name} has non-numeric columns {non_numeric[:5]}; pass genes as the index "
            "(e.g. frame.set_index('gene')) and samples as numeric columns."
        )
        raise ValueError(msg)
    frame = frame.astype(np.float64)
    frame.index = frame.index.astype(str)
    frame.columns = frame.columns.astype(str)
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()].unique()
        msg = (
            f"{name} has {len(dup)} duplicated gene names, e.g. {list(dup[:5])}; aggregate or drop "
            "them first (SecAct keeps the row with the largest total)."
        )
        raise ValueError(msg)
    values = frame.to_numpy()
    if not np.isfinite(values).all():
        bad = frame.columns[~np.isfinite(values).all(axis=0)]
        msg = (
            f"{name} has {int((~np.isfinite(values)).sum())} missing or infinite values (samples "
            f"{list(bad[:5])}); drop or impute those genes first."
        )
        raise ValueError(msg)
    return frame


def _response(
    profile: pd.DataFrame,
    control: pd.DataFrame | None,
    *,
    differential: bool,
    paired: bool,
    single_sample: bool,
) -> pd.DataFrame:
    """Build the response ``Y`` (genes x samples) as SecAct R does."""
    if differential:
        if control is not None:
            msg = "{differential=True} means the profile is already a difference; do not pass {control=...}."
            raise ParamError(msg)
        return profile
    if control is None:
        if profile.shape[1] < 2:
            msg = (
                "the profile has one sample: centring on the mean over samples would give zeros. "
                "Pass {differential=True} if it is already a difference (e.g. log fold changes), or "
                "give control samples."
            )
            raise ParamError(msg)
        return profile.sub(profile.mean(axis=1), axis=0)
    missing = profile.index.difference(control.index)
    if len(missing):
        logger.warning(
            "%d genes of the profile are not in the control and are dropped (e.g. %s)",
            len(missing),
            list(missing[:3]),
        )
        profile = profile.loc[profile.index.isin(control.index)]
    control = control.loc[profile.index]
    if paired:
        absent = profile.columns.difference(control.columns)
        if len(absent):
            msg = (
                f"paired=True needs a control column for every profile sample; missing "
                f"{list(absent[:5])} (control has {list(control.columns[:5])}...)."
            )
            raise ValueError(msg)
        y = profile - control[profile.columns]
    else:
        y = profile.sub(control.mean(axis=1), axis=0)
    if not single_sample:
        y = y.mean(axis=1).to_frame("Change")
    return y


def _scale(profile: pd.DataFrame, control: pd.DataFrame | None, y: pd.DataFrame) -> np.ndarray:
    """The magnitude of the data each response column was computed from (a column whose spread
    is at the level of rounding relative to it is constant: e.g. a profile minus itself)."""
    size = float(np.nanmax(np.abs(profile.to_numpy()))) if profile.size else 0.0
    if control is not None and control.size:
        size += float(np.nanmax(np.abs(control.to_numpy())))
    return np.full(y.shape[1], size)


@doc_params(signature=doc_signature, inference=doc_inference)
def infer(
    profile: pd.DataFrame | pd.Series | AnnData,
    signature: str | os.PathLike | pd.DataFrame = "SecAct",
    *,
    differential: bool = False,
    control: pd.DataFrame | pd.Series | AnnData | None = None,
    paired: bool = False,
    single_sample: bool = False,
    method: Literal["permutation", "analytic"] = "permutation",
    n_permutations: int = 1000,
    rng: Literal["mt19937", "srand", "numpy"] = "mt19937",
    seed: int = 0,
    group_signatures: bool = True,
    group_cor: float = 0.9,
    filter_signature: bool = False,
    lambda_: float = 5e5,
    backend: Literal["auto", "cpu", "gpu"] | None = None,
) -> ActivityResult:
    """Infer secreted-protein signalling activity from bulk expression profiles.

    Follows SecAct R 1.1 ``SecAct.activity.inference`` to the last digit: the response ``Y`` is
    built from the profile, genes shared with the signature are taken in the *profile's* order,
    signature and response are z-scored over those genes, ``beta = (X'X + lambda I)^-1 X'Y``
    and a permutation test over genes gives ``se``, ``zscore`` and ``pvalue``.

    Parameters
    ----------
    profile
        Genes x samples DataFrame (gene symbols as index), a Series (one sample), or an AnnData
        with samples as observations and genes as variables.
    {signature}
    differential
        The profile is already a differential profile (e.g. log fold changes): used as-is.
    control
        Control samples (same layout as ``profile``). Without it, and unless ``differential``,
        the profile is centred on its mean over samples.
    paired
        Subtract each sample's own control column (same column names) instead of the mean.
    single_sample
        With ``control``: one result per sample instead of one for the mean difference
        (column ``"Change"``).
    {inference}

    Returns
    -------
    ActivityResult
        :class:`ActivityResult` with proteins x samples DataFrames ``beta``, ``se``, ``zscore``
        and ``pvalue``.

    Examples
    --------
    >>> import secact
    >>> res = secact.infer(logfc, differential=True)  # doctest: +SKIP
    >>> res.zscore.sort_values("Diff").tail()  # doctest: +SKIP
    """
    options = InferenceParams(
        method, n_permutations, rng, seed, group_signatures, group_cor, filter_signature, lambda_
    )
    t0 = time.perf_counter()
    frame = _as_frame(profile, "profile")
    ctrl = None if control is None else _as_frame(control, "control")
    sig = _signature(signature)
    _check_orientation(frame, sig)
    y = _response(frame, ctrl, differential=differential, paired=paired, single_sample=single_sample)
    scale = _scale(frame, ctrl, y)
    sig_name = signature if isinstance(signature, str) and signature in SIGNATURES else None
    plan = make_plan(
        sig, y.index, options, signature_name=sig_name, backend=resolve_backend(backend, profile)
    )
    hint(
        "%s signature: %s of its %s genes are in the profile",
        sig_name or "custom",
        f"{plan.params['n_genes_overlap']:,}",
        f"{sig.shape[0]:,}",
    )
    stats = infer_matrix(plan, y.to_numpy().T, y.columns, scale=scale)
    proteins = pd.Index(plan.proteins)
    out = {k: pd.DataFrame(getattr(stats, k).T, index=proteins, columns=y.columns) for k in STATS}
    params = {
        **plan.params,
        "signature": signature if isinstance(signature, str) else "custom",
        "differential": bool(differential),
        "paired": bool(paired),
        "single_sample": bool(single_sample),
    }
    logger.info(
        "computed activity of %s sample(s) x %s proteins in %s (%s)",
        f"{y.shape[1]:,}",
        f"{len(proteins):,}",
        elapsed(t0),
        _method_text(options),
    )
    return ActivityResult(**out, params=params)


def _method_text(options: InferenceParams) -> str:
    """How significance was computed, for log lines."""
    if options.method == "analytic":
        return "analytic"
    return f"{options.n_permutations:,} permutations"


def _check_orientation(frame: pd.DataFrame, sig: pd.DataFrame) -> None:
    rows = frame.index.isin(sig.index).sum()
    cols = frame.columns.isin(sig.index).sum()
    if rows < 20 and cols >= 20 and cols > rows:
        msg = (
            f"the profile's columns look like genes ({cols} are signature genes, against {rows} of "
            "its rows): genes must be rows. Pass profile.T."
        )
        raise ValueError(msg)
