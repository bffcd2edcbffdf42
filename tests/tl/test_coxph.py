"""secact.tl.coxph against R's survival::coxph (tests/data/coxph, made by make_reference.R)."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import secact
from secact._errors import ParamError
from secact.core.cox import cox_fit

DATA = Path(__file__).parents[1] / "data" / "coxph"
COVARIATES = {"nocov": [], "age": ["age"], "cov": None}  # None: every other column, as R's `~ .`


@pytest.fixture(scope="module")
def activity() -> pd.DataFrame:
    """Samples x proteins (the file is proteins x samples, as SecAct R writes it)."""
    return pd.read_csv(DATA / "activity.tsv", sep="\t", index_col=0).T


@pytest.fixture(scope="module")
def clinical() -> pd.DataFrame:
    return pd.read_csv(DATA / "clinical.tsv", sep="\t", index_col=0)


def reference(name: str) -> pd.DataFrame:
    return pd.read_csv(
        DATA / f"coxph_{name}.tsv", sep="\t", index_col=0, keep_default_na=False, na_values="NA"
    )


@pytest.mark.parametrize("name", list(COVARIATES))
def test_risk_scores_equal_r(activity, clinical, name):
    ref = reference(name)
    table = secact.tl.coxph(activity, clinical, covariates=COVARIATES[name])
    assert table.index.tolist() == ref.index.tolist()
    # NA exactly where R gives NA (P28 constant: singular; P29 = -Time: no convergence; P31: a
    # group without events, an infinite coefficient)
    np.testing.assert_array_equal(table["risk_z"].isna(), ref["z"].isna())
    assert ref["z"].isna().sum() == 3
    for ours, theirs in (("risk_z", "z"), ("pvalue", "pvalue"), ("coef", "coef"), ("se", "se")):
        ok = ref["z"].notna()  # R reports se 0 for a singular fit; ours is NaN with a reason
        np.testing.assert_allclose(table.loc[ok, ours], ref.loc[ok, theirs], rtol=0, atol=1e-10)
    fitted = ref["n"].notna()
    np.testing.assert_array_equal(table.loc[fitted, "n"], ref.loc[fitted, "n"])
    assert table.loc["P30", "n"] == 74  # three missing activities: those samples left out
    assert table.loc["P29", "failure"] == ref.loc["P29", "warning"]
    assert "singular" in table.loc["P28", "failure"]
    assert ref.loc["P31", "warning"].startswith("Loglik converged before variable")
    assert table.loc["P31", "failure"].startswith("Loglik converged before variable activity;")
    assert (table.loc[ref["z"].notna(), "failure"] == "").all()


@pytest.mark.parametrize("name", list(COVARIATES))
def test_newton_raphson_takes_rs_iterations(activity, clinical, name):
    """The same iterations as coxfit6, not only the same optimum."""
    ref = reference(name)
    shared = [s for s in clinical.index if s in activity.index]
    clin = clinical.loc[shared]
    covs = ["age", "sex", "stage"] if COVARIATES[name] is None else COVARIATES[name]
    design = pd.DataFrame(index=clin.index)
    for col in covs:
        if col == "stage":
            design[["stageII", "stageIII"]] = np.column_stack([clin[col] == "II", clin[col] == "III"])
        else:
            design[col] = clin[col]
    values = activity.loc[shared].drop(columns=["P30"])
    fit = cox_fit(clin["Time"], clin["Event"], design.to_numpy(float), values.to_numpy())
    converged = ref["iter"].drop("P30").notna().to_numpy()
    np.testing.assert_array_equal(fit.iterations[converged], ref["iter"].drop("P30")[converged])
    assert fit.failure[values.columns.get_loc("P29")] == 1  # ran out of 20 iterations
    assert fit.iterations[values.columns.get_loc("P29")] == 20
    p31 = values.columns.get_loc("P31")  # R: "Loglik converged before variable <the activity>"
    assert fit.failure[p31] == 2 and fit.infinite[p31].tolist() == [False] * design.shape[1] + [True]


def test_inputs_give_one_answer(activity, clinical):
    table = secact.tl.coxph(activity, clinical)
    result = secact.ActivityResult(activity.T, activity.T, activity.T, activity.T, params={})
    pd.testing.assert_frame_equal(secact.tl.coxph(result, clinical), table)
    adata = ad.AnnData(activity.to_numpy(), obs=pd.DataFrame(index=activity.index))
    adata.var_names = activity.columns
    pd.testing.assert_frame_equal(secact.tl.coxph(adata, clinical), table)
    # sample order does not matter; an unrelated clinical column order neither
    shuffled = clinical.sample(frac=1, random_state=0)
    pd.testing.assert_frame_equal(secact.tl.coxph(activity, shuffled), table, rtol=1e-12, atol=1e-12)


def test_categorical_and_boolean_covariates(activity, clinical):
    base = secact.tl.coxph(activity, clinical)
    clin = clinical.assign(
        sex=clinical["sex"].astype(bool), stage=pd.Categorical(clinical["stage"], ["I", "II", "III"])
    )
    pd.testing.assert_frame_equal(secact.tl.coxph(activity, clin), base, rtol=1e-12, atol=1e-12)


def test_overlap_is_logged_and_checked(activity, clinical, scanpy_log):
    import scanpy as sc

    sc.settings.verbosity = 2  # secact logs through scanpy's log once scanpy is imported (caplog misses it)
    secact.tl.coxph(activity, clinical, covariates=[])
    log = scanpy_log.readouterr().err
    assert "77 samples in both tables (79 with activity, 80 with clinical data)" in log
    assert "no risk score for 3 proteins" in log
    with pytest.raises(ParamError, match=r"no sample is in both.*activity\.T") as err:
        secact.tl.coxph(activity.T, clinical)
    assert err.value.param == "activity"


def test_bad_clinical_tables(activity, clinical):
    with pytest.raises(ParamError, match="time='OS' is not a column of clinical") as err:
        secact.tl.coxph(activity, clinical, time="OS")
    assert err.value.param == "time"
    with pytest.raises(
        ParamError, match=r"clinical\[event='Event'\] must be 1 .* found \[1.0, 2.0\] \(R's 1 = censored"
    ):
        secact.tl.coxph(activity, clinical.assign(Event=clinical["Event"] + 1))
    with pytest.raises(ParamError, match="holds no event"):
        secact.tl.coxph(activity, clinical.assign(Event=0))
    with pytest.raises(ParamError, match=r"covariates=\['grade'\] names \['grade'\]"):
        secact.tl.coxph(activity, clinical, covariates=["grade"])


def test_missing_clinical_values_leave_samples_out(activity, clinical):
    clin = clinical.copy()
    clin.loc[clin.index[:4], "age"] = np.nan
    table = secact.tl.coxph(activity, clin, covariates=["age"])
    kept = clin.index[4:]
    expected = secact.tl.coxph(activity, clinical.loc[kept], covariates=["age"])
    pd.testing.assert_frame_equal(table, expected)


def test_breslow_ties_equal_r(activity, clinical):
    ref = reference("age_breslow")
    table = secact.tl.coxph(activity, clinical, covariates=["age"], ties="breslow")
    np.testing.assert_array_equal(table["risk_z"].isna(), ref["z"].isna())
    ok = ref["z"].notna()
    np.testing.assert_allclose(table.loc[ok, "risk_z"], ref.loc[ok, "z"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(table.loc[ok, "pvalue"], ref.loc[ok, "pvalue"], rtol=0, atol=1e-10)
    efron = secact.tl.coxph(activity, clinical, covariates=["age"])
    assert not np.allclose(efron.loc[ok, "risk_z"], table.loc[ok, "risk_z"], atol=1e-6)  # ties matter here


def test_timefix_merges_near_ties(activity, clinical):
    """R's aeqSurv: times equal up to sqrt(eps) are one time (tied under Efron's rule)."""
    clin = clinical.copy()
    clin["Time"] = clin["Time"] * (1 + 1e-12 * np.arange(len(clin)))
    pd.testing.assert_frame_equal(
        secact.tl.coxph(activity, clin, covariates=[]),
        secact.tl.coxph(activity, clinical, covariates=[]),
        rtol=1e-9,
        atol=1e-9,
    )


def test_activity_collinear_with_a_covariate(clinical):
    """0.5 * age - 30: R's coxph gives the activity NA (singular pivot, no warning) once age is
    in the model, an ordinary fit without it (coxph_collinear.tsv)."""
    ref = pd.read_csv(DATA / "coxph_collinear.tsv", sep="\t", index_col=0)
    act = pd.DataFrame({"P32": 0.5 * clinical["age"] - 30}, index=clinical.index)
    for setting, covariates in (("none", []), ("age", ["age"]), ("all", None)):
        row = secact.tl.coxph(act, clinical, covariates=covariates).loc["P32"]
        if np.isnan(ref.loc[setting, "z"]):
            assert np.isnan(row["risk_z"]) and "singular" in row["failure"]
        else:
            assert row["risk_z"] == pytest.approx(ref.loc[setting, "z"], abs=1e-10)
            assert row["pvalue"] == pytest.approx(ref.loc[setting, "pvalue"], abs=1e-10)
