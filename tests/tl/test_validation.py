"""Bad input gets a clear error or a documented behaviour (each case failed before)."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact
from secact.core.params import InferenceParams
from secact.core.plan import make_plan


@pytest.fixture(scope="module")
def cells() -> ad.AnnData:
    return secact.datasets.simulate(n_cells=240, seed=5)


def _act(a, **kw):
    kw.setdefault("method", "analytic")
    return secact.tl.activity(a, "CytoSig", progress=False, **kw)


@pytest.mark.parametrize("n", [1, True])
def test_fewer_than_two_permutations(cells, n):
    with pytest.raises(ValueError, match="n_permutations"):
        _act(cells.copy(), method="permutation", n_permutations=n)


@pytest.mark.parametrize("value", [True, "1e5", np.inf, 0])
def test_scale_factor_must_be_a_finite_positive_number(cells, value):
    with pytest.raises((TypeError, ValueError), match="scale_factor"):
        _act(cells.copy(), scale_factor=value)


@pytest.mark.parametrize("key", ["a/b", 5, None, "", ".", "..", "  "])
def test_key_added_must_be_writable(cells, key):
    with pytest.raises(ValueError, match="key_added"):
        _act(cells.copy(), key_added=key)
    with pytest.raises(ValueError, match="key_added"):
        secact.tl.differential(cells.copy(), "group", key_added=key)


def test_series_reference_is_aligned_by_cell_name(cells):
    mask = (cells.obs["group"] == "control").to_numpy()
    a, b = cells.copy(), cells.copy()
    _act(a, reference=mask)
    _act(b, reference=pd.Series(mask, index=cells.obs_names).iloc[::-1])  # another order
    np.testing.assert_array_equal(a.obsm["secact_zscore"], b.obsm["secact_zscore"])
    foreign = pd.Series(True, index=[f"x{i}" for i in range(cells.n_obs)])
    with pytest.raises(ValueError, match="not in obs_names"):
        _act(cells.copy(), reference=foreign)


def test_single_group_as_its_own_reference(cells):
    only = cells[cells.obs["group"] == "control"].copy()
    with pytest.raises(ValueError, match="only the reference group"):
        _act(only, groupby="group", reference="control", method="permutation", n_permutations=10)
    with pytest.raises(ValueError, match="nothing to compare"):
        secact.tl.differential(only, "group", reference="control")


def test_profile_minus_itself_is_constant():
    """A control equal to the profile up to rounding gave z up to 1.8 from the noise."""
    sig = secact.datasets.signature("CytoSig")
    rng = np.random.default_rng(0)
    prof = pd.DataFrame(rng.normal(5, 2, size=(len(sig), 2)), index=sig.index, columns=["s1", "s2"])
    with pytest.raises(ValueError, match="constant"):
        secact.infer(prof, "CytoSig", control=prof * (1 + 1e-15))
    # a real (small) difference is still inferred
    res = secact.infer(prof, "CytoSig", control=prof + rng.normal(0, 1e-3, size=prof.shape))
    assert np.isfinite(res.zscore.to_numpy()).all()


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_engine_treats_rounding_level_spread_as_constant(layout):
    sig = secact.datasets.signature("CytoSig")
    plan = make_plan(sig, list(sig.index), InferenceParams(method="permutation", n_permutations=20))
    n = plan.gene_index.size
    rng = np.random.default_rng(1)
    centre = rng.gamma(2.0, 1.0, size=n)
    good = centre + rng.normal(0, 1, size=n)
    noise = centre * (1 + 1e-15 * rng.choice([-1, 1], size=n))  # the centre up to rounding
    block = np.vstack([good, noise, centre])
    block = sp.csr_matrix(block) if layout == "sparse" else block
    engine = plan.engine(centre)
    with pytest.warns(RuntimeWarning, match="2 sample"):
        both = engine.run(block)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alone = engine.run(block[:1])
    for k in ("beta", "se", "zscore", "pvalue"):
        got = getattr(both, k)
        assert np.isnan(got[1:]).all(), k
        np.testing.assert_allclose(got[0], getattr(alone, k)[0], rtol=0, atol=1e-12)


def test_signature_path_to_an_h5ad(cells, tmp_path):
    path = tmp_path / "data.h5ad"
    cells.write_h5ad(path)
    with pytest.raises(ValueError, match=r"binary file.*not a signature table"):
        secact.tl.activity(cells.copy(), path, progress=False)


def test_corrupted_in_memory_csr_is_an_error(cells):
    a = cells.copy()
    x = sp.csr_matrix(a.X, copy=True)
    x.indices[7] = x.shape[1] + 3  # out of range: was read past the row
    a.X = x
    with pytest.raises(ValueError, match=r"outside \[0, "):
        _act(a)
    x.indices[7] = 0
    x.indptr[5] = x.indptr[6] + 1  # decreasing
    with pytest.raises(ValueError, match="decreases at row/column 5"):
        _act(a)


def test_differential_inf_is_treated_like_nan(cells):
    x = cells.X.toarray().astype(np.float64)
    a, b = cells.copy(), cells.copy()
    a.X, b.X = x.copy(), x.copy()
    row = int(np.flatnonzero(cells.obs["group"] == cells.obs["group"].cat.categories[0])[0])
    a.X[row, 3] = np.inf
    b.X[row, 3] = np.nan
    with pytest.warns(UserWarning, match="NaN or infinite"):
        secact.tl.differential(a, "group")
    with pytest.warns(UserWarning, match="NaN or infinite"):
        secact.tl.differential(b, "group")
    pd.testing.assert_frame_equal(secact.get.differential(a), secact.get.differential(b))
    res = secact.get.differential(a, sort_by=None)
    assert res.loc[res["gene"] == cells.var_names[3], "zscore"].isna().any()
    assert res.loc[res["gene"] != cells.var_names[3], "zscore"].notna().all()


def test_differential_float16_and_zero_genes(cells):
    half, single = cells.copy(), cells.copy()
    half.X = cells.X.toarray().astype(np.float16)
    single.X = half.X.astype(np.float32)
    secact.tl.differential(half, "group")
    secact.tl.differential(single, "group")
    pd.testing.assert_frame_equal(secact.get.differential(half), secact.get.differential(single))
    with pytest.raises(ValueError, match="0 genes"):
        secact.tl.differential(cells[:, []].copy(), "group")
