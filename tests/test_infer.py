"""secact.infer: response construction like SecAct R, inputs, outputs and bad input."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import secact
from secact.datasets import signature


@pytest.fixture(scope="module")
def cytosig() -> pd.DataFrame:
    return signature("CytoSig")


@pytest.fixture(scope="module")
def profile(cytosig) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    genes = list(cytosig.index[:2000]) + [f"NOTASIG{i}" for i in range(50)]
    data = (
        rng.normal(size=(len(genes), 4)) + 2.0 * cytosig.reindex(genes)["IFNG"].fillna(0).to_numpy()[:, None]
    )
    return pd.DataFrame(data, index=genes, columns=["s1", "s2", "s3", "s4"])


def run(profile, **kw):
    kw.setdefault("n_permutations", 100)
    return secact.infer(profile, "CytoSig", **kw)


def test_centring_on_row_means_equals_explicit_differential(profile):
    centred = profile.sub(profile.mean(axis=1), axis=0)
    a = run(profile)
    b = run(centred, differential=True)
    for key in ("beta", "se", "zscore", "pvalue"):
        pd.testing.assert_frame_equal(getattr(a, key), getattr(b, key), rtol=0, atol=1e-12)


def test_control_mean_and_paired(profile):
    control = profile.iloc[:, :2]
    treated = profile.iloc[:, 2:]
    res = run(treated, control=control)
    expected = run(
        (treated.sub(control.mean(axis=1), axis=0)).mean(axis=1).to_frame("Change"), differential=True
    )
    pd.testing.assert_frame_equal(res.zscore, expected.zscore, atol=1e-12)
    single = run(treated, control=control, single_sample=True)
    assert list(single.zscore.columns) == ["s3", "s4"]
    paired_ctrl = control.set_axis(["s3", "s4"], axis=1)
    paired = run(treated, control=paired_ctrl, paired=True, single_sample=True)
    exp = run(treated - paired_ctrl, differential=True)
    pd.testing.assert_frame_equal(paired.zscore, exp.zscore, atol=1e-12)


def test_gene_order_of_profile_defines_the_null(profile):
    shuffled = profile.sample(frac=1.0, random_state=1)
    a = run(profile, differential=True)
    b = run(shuffled, differential=True)
    np.testing.assert_allclose(a.beta, b.beta, atol=1e-12)  # beta does not depend on the order
    assert not np.allclose(a.se, b.se)  # the permutation null does


def test_anndata_and_series_inputs(profile):
    a = run(profile, differential=True)
    adata = ad.AnnData(
        profile.T.to_numpy(), obs=pd.DataFrame(index=profile.columns), var=pd.DataFrame(index=profile.index)
    )
    b = run(adata, differential=True)
    pd.testing.assert_frame_equal(a.zscore, b.zscore)
    c = run(profile["s1"], differential=True)
    np.testing.assert_allclose(c.zscore["s1"], a.zscore["s1"], atol=1e-12)


def test_result_to_anndata(profile):
    res = run(profile, differential=True)
    out = res.to_anndata()
    assert out.shape == (4, 43)
    np.testing.assert_array_equal(out.X, res.zscore.T.to_numpy())
    np.testing.assert_array_equal(out.layers["pvalue"], res.pvalue.T.to_numpy())
    assert out.uns["secact"]["params"]["n_permutations"] == 100
    beta, se, z, p = res
    assert beta is res.beta and se is res.se and z is res.zscore and p is res.pvalue


def test_ungrouped_keeps_signature_order_grouped_sorts(profile, cytosig):
    res = run(profile, differential=True, group_signatures=False)
    assert list(res.beta.index) == list(cytosig.columns)
    grouped = run(profile, differential=True)
    assert list(grouped.beta.index) == sorted(cytosig.columns, key=lambda s: (s.lower(), s))


def test_filter_signature_keeps_proteins_whose_gene_is_measured(profile, cytosig):
    res = run(profile, differential=True, filter_signature=True, group_signatures=False)
    assert set(res.beta.index) == set(cytosig.columns[cytosig.columns.isin(profile.index)])


def test_rng_and_seed_change_only_the_null(profile):
    a = run(profile, differential=True, rng="numpy", seed=1)
    b = run(profile, differential=True, rng="numpy", seed=2)
    np.testing.assert_array_equal(a.beta, b.beta)
    assert not np.array_equal(a.se, b.se)
    c = run(profile, differential=True, rng="numpy", seed=1)
    np.testing.assert_array_equal(a.se, c.se)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda p: p.T, "genes must be rows"),
        (lambda p: p.iloc[:10], "only 10 genes"),
        (lambda p: p.assign(s1=np.where(np.arange(len(p)) == 3, np.nan, p["s1"])), "missing or infinite"),
        (lambda p: pd.concat([p, p.iloc[:2]]), "duplicated gene names"),
        (lambda p: p.assign(s2=0.0), "constant"),
        (lambda p: p.iloc[:, :0], "no samples"),
        (lambda p: p.assign(label="x"), "non-numeric"),
    ],
)
def test_bad_input_is_a_clear_error(profile, mutate, match):
    with pytest.raises(ValueError, match=match):
        run(mutate(profile), differential=True)


def test_bad_arguments(profile):
    with pytest.raises(ValueError, match="Unknown signature"):
        secact.infer(profile, "NoSuchSignature", differential=True)
    with pytest.raises(TypeError, match="DataFrame"):
        secact.infer(profile.to_numpy(), "CytoSig", differential=True)
    with pytest.raises(ValueError, match="one sample"):
        run(profile[["s1"]])
    with pytest.raises(ValueError, match="paired=True"):
        run(profile.iloc[:, 2:], control=profile.iloc[:, :2], paired=True)
    with pytest.raises(ValueError, match="rng"):
        run(profile, differential=True, rng="bogus")
    with pytest.raises(ValueError, match="n_permutations"):
        run(profile, differential=True, n_permutations=0)
