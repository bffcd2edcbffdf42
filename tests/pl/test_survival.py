"""secact.pl.survival (and the coxph table in pl.lollipop / pl.bar) against R's survival package
(reference values in tests/data/coxph, made by make_reference.R)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.testing.compare import compare_images

import secact
from secact._errors import ParamError
from secact.core.cox import kaplan_meier
from secact.pl._survival import survival_split

DATA = Path(__file__).parents[1] / "data" / "coxph"
BASELINE = Path(__file__).parent / "baseline"


@pytest.fixture(scope="module")
def activity() -> pd.DataFrame:
    return pd.read_csv(DATA / "activity.tsv", sep="\t", index_col=0).T


@pytest.fixture(scope="module")
def clinical() -> pd.DataFrame:
    return pd.read_csv(DATA / "clinical.tsv", sep="\t", index_col=0)


@pytest.fixture(scope="module")
def best() -> pd.DataFrame:
    return pd.read_csv(DATA / "best_separation.tsv", sep="\t", index_col=0)


COLUMNS = {"none": ["Time", "Event"], "age+sex": ["Time", "Event", "age", "sex"]}


@pytest.mark.parametrize(
    "key", ["P01:none", "P02:none", "P05:none", "P01:age+sex", "P02:age+sex", "P05:age+sex"]
)
def test_best_separation_equals_r(activity, clinical, best, key):
    ref = best.loc[key]
    split = survival_split(activity, clinical[COLUMNS[ref["covariates"]]], ref["protein"])
    assert split.threshold == ref["threshold"]  # a sample's activity: equal to the last bit
    assert split.cutoff == pytest.approx(ref["cutoff"], abs=1e-15)
    assert split.z == pytest.approx(ref["z"], abs=1e-10)
    assert (split.high.sum(), (~split.high).sum()) == (ref["n_high"], ref["n_low"])
    assert split.logrank_chisq == pytest.approx(ref["logrank_chisq"], abs=1e-10)
    assert split.logrank_p == pytest.approx(ref["logrank_p"], abs=1e-12)


def test_curves_are_rs_kaplan_meier(activity, clinical):
    km = pd.read_csv(DATA / "kaplan_meier.tsv", sep="\t")
    for protein in ("P01", "P02", "P05"):
        fig = secact.pl.survival(activity, clinical[["Time", "Event"]], protein, return_fig=True)
        ax = fig.axes[0]
        steps = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
        assert steps[0].get_label().startswith("High (n=")
        for line, group in zip(steps, ("high", "low"), strict=True):
            ref = km[(km["protein"] == protein) & (km["group"] == group)]
            x, y = line.get_xdata(), line.get_ydata()
            np.testing.assert_allclose(x[1:], ref["time"], rtol=0, atol=1e-12)
            np.testing.assert_allclose(y[1:], ref["surv"], rtol=0, atol=1e-12)
            assert (x[0], y[0]) == (0.0, 1.0)
            assert line.get_label().endswith(f"(n={int(ref['n_risk'].iloc[0])})")
        text = " ".join(t.get_text() for t in ax.texts)
        assert "log-rank p = " in text and "best separation" in text
        plt.close(fig)


def test_kaplan_meier_counts(activity, clinical):
    km = pd.read_csv(DATA / "kaplan_meier.tsv", sep="\t")
    split = survival_split(activity, clinical[["Time", "Event"]], "P01")
    low = ~split.high.to_numpy()
    curve = kaplan_meier(split.time[low], split.event[low])
    ref = km[(km["protein"] == "P01") & (km["group"] == "low")]
    np.testing.assert_array_equal(curve.n_risk, ref["n_risk"])
    np.testing.assert_array_equal(curve.n_event, ref["n_event"])
    np.testing.assert_array_equal(curve.n_censor, ref["n_censor"])


def test_given_threshold_and_errors(activity, clinical):
    split = survival_split(activity, clinical[["Time", "Event"]], "P01", threshold=0.0)
    assert np.isnan(split.threshold) and split.cutoff == 0.0
    assert split.high.sum() == (activity.loc[split.high.index, "P01"] > 0).sum()
    with pytest.raises(ParamError, match="protein='NOPE' is not among the 31 proteins"):
        secact.pl.survival(activity, clinical, "NOPE")
    few = clinical.assign(Event=(np.arange(len(clinical)) < 5).astype(int))
    with pytest.raises(ParamError, match=r"needs at least 10%"):
        secact.pl.survival(activity, few, "P01")
    with pytest.raises(ValueError, match=r"Cox fit of 'P29'.*did not converge"):
        secact.pl.survival(activity, clinical, "P29")
    with pytest.raises(ValueError, match="every sample in one group"):
        secact.pl.survival(activity, clinical, "P01", threshold=100.0)


def test_lollipop_and_bar_take_the_coxph_table(activity, clinical):
    table = secact.tl.coxph(activity, clinical)
    for plot in (secact.pl.lollipop, secact.pl.bar):
        ax = plot(table, "Risk score", top=3, show=False)
        labels = [t.get_text() for t in ax.get_yticklabels()]
        z = table["risk_z"].dropna()
        assert labels == sorted(labels, key=lambda p: z[p])  # bottom to top: lowest to highest
        assert set(labels) == set(z.nsmallest(3).index) | set(z.nlargest(3).index)
        assert ax.get_xlabel() == "risk score (Cox z)" and ax.get_title() == "Risk score"
        plt.close(ax.figure)


def test_survival_matches_baseline(activity, clinical, tmp_path):
    actual = tmp_path / "survival.png"
    with plt.style.context("default"), plt.rc_context({"figure.dpi": 80}):
        secact.pl.survival(activity, clinical[["Time", "Event"]], "P01", save=actual, show=False)
    expected = BASELINE / "survival.png"
    if os.environ.get("SECACT_UPDATE_BASELINES"):
        shutil.copyfile(actual, expected)
    assert expected.exists(), f"no baseline {expected}; create it with SECACT_UPDATE_BASELINES=1"
    assert compare_images(str(expected), str(actual), tol=6.0) is None
