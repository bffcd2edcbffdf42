"""``secact.datasets.simulate_spatial``: shapes, determinism, the planted niches, h5ad."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import secact
from secact.datasets._simulate_spatial import DEFAULT_NICHES, NO_NICHE


@pytest.fixture(scope="module")
def tissue() -> ad.AnnData:
    return secact.datasets.simulate_spatial(900, seed=3)


@pytest.fixture(scope="module")
def spots() -> ad.AnnData:
    return secact.datasets.simulate_spatial(400, layout="visium", seed=3)


def _gene(adata: ad.AnnData, gene: str) -> np.ndarray:
    return adata[:, gene].X.toarray().ravel()


def test_shapes_and_annotations(tissue):
    assert tissue.n_obs == 900
    assert sp.isspmatrix_csr(tissue.X) or isinstance(tissue.X, sp.csr_array)
    assert np.issubdtype(tissue.X.dtype, np.integer)
    assert tissue.var_names.is_unique
    sig = secact.datasets.signature("CytoSig")
    assert set(sig.index) <= set(tissue.var_names)
    assert {"IFNG", "TGFB1", "IL6"} <= set(tissue.var_names)
    assert tissue.var["in_signature"].sum() == sig.shape[0]
    xy = tissue.obsm["spatial"]
    assert xy.shape == (900, 2) and xy.dtype == np.float64
    # a jittered grid: every cell has a nearest neighbour about one spacing (10 µm) away
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    assert 5 < d.min(axis=1).min() and d.min(axis=1).max() < 15
    assert isinstance(tissue.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert list(tissue.obs["niche"].cat.categories) == [*DEFAULT_NICHES, NO_NICHE]
    for niche in DEFAULT_NICHES:  # every niche holds cells and is surrounded by tissue outside
        assert (tissue.obs["niche"] == niche).sum() > 40
    assert (tissue.obs["niche"] == NO_NICHE).sum() > 0.3 * tissue.n_obs


def test_library_sizes_are_realistic(tissue):
    total = np.asarray(tissue.X.sum(axis=1)).ravel()
    assert 1500 < total.mean() < 2500
    assert total.std() / total.mean() > 0.2  # log-normal library sizes, not constant
    # over-dispersed counts (negative binomial): variance exceeds the mean for abundant genes
    dense = tissue[tissue.obs["niche"] == NO_NICHE].X.toarray().astype(float)
    top = np.argsort(dense.mean(axis=0))[-50:]
    assert np.median(dense[:, top].var(axis=0) / dense[:, top].mean(axis=0)) > 2


def test_deterministic_and_seeded():
    a = secact.datasets.simulate_spatial(300, seed=7)
    b = secact.datasets.simulate_spatial(300, seed=7)
    c = secact.datasets.simulate_spatial(300, seed=8)
    assert (a.X != b.X).nnz == 0
    np.testing.assert_array_equal(a.obsm["spatial"], b.obsm["spatial"])
    pd.testing.assert_frame_equal(a.obs, b.obs)
    assert (a.X != c.X).nnz > 0


def test_planted_senders_express_their_gene(tissue):
    obs = tissue.obs
    for niche, (sender, protein, receivers) in DEFAULT_NICHES.items():
        expr = _gene(tissue, protein)
        senders = obs["is_sender"].to_numpy() & (obs["niche"] == niche).to_numpy()
        assert senders.sum() >= 5, niche
        assert (obs.loc[senders, "cell_type"] == sender).all()
        same_type_elsewhere = (obs["cell_type"] == sender).to_numpy() & ~senders
        assert expr[senders].mean() > 20 * expr[same_type_elsewhere].mean(), niche
        # receivers are the niche's receiver types inside the niche only
        rec = obs["is_receiver"].to_numpy() & (obs["niche"] == niche).to_numpy()
        assert set(obs.loc[rec, "cell_type"]) == set(receivers)
        inside = (obs["niche"] == niche).to_numpy() & obs["cell_type"].isin(receivers).to_numpy()
        np.testing.assert_array_equal(rec, inside)
    assert not (obs["is_receiver"] & (obs["niche"] == NO_NICHE)).any()


def test_senders_sit_in_the_niche_core(tissue):
    info = tissue.uns["simulation"]
    xy = tissue.obsm["spatial"]
    for m, niche in enumerate(info["niches"]):
        senders = tissue.obs["is_sender"].to_numpy() & (tissue.obs["niche"] == niche).to_numpy()
        dist = np.sqrt(((xy[senders] - info["centers"][m]) ** 2).sum(axis=1))
        assert dist.max() <= info["core_radius"] + 1e-9


def test_receivers_show_the_signature_response(tissue):
    """Receivers' log expression moves along the protein's signature column, others do not."""
    sig = secact.datasets.signature("CytoSig")
    genes = sig.index
    x = tissue[:, genes].X.toarray().astype(float)
    total = np.asarray(tissue.X.sum(axis=1)).ravel()
    logx = np.log2(x / total[:, None] * 1e4 + 1)
    rest = (tissue.obs["niche"] == NO_NICHE).to_numpy()
    seen = x.mean(axis=0) > 0.5  # genes with enough counts for a mean log ratio
    for niche, (_, protein, _) in DEFAULT_NICHES.items():
        rec = tissue.obs["is_receiver"].to_numpy() & (tissue.obs["niche"] == niche).to_numpy()
        diff = (logx[rec].mean(axis=0) - logx[rest].mean(axis=0))[seen]
        own = np.corrcoef(diff, sig[protein].to_numpy()[seen])[0, 1]
        assert own > 0.2, (niche, own)
        for other in {p for _, p, _ in DEFAULT_NICHES.values()} - {protein}:
            assert own > np.corrcoef(diff, sig[other].to_numpy()[seen])[0, 1] + 0.1, (niche, other)


def test_uns_is_writable(tissue, spots, tmp_path):
    for adata in (tissue, spots):
        path = tmp_path / "sim.h5ad"
        adata.write_h5ad(path)
        back = ad.read_h5ad(path)
        info = back.uns["simulation"]
        assert set(info["niches"]) == set(DEFAULT_NICHES)
        for niche, (sender, protein, receivers) in DEFAULT_NICHES.items():
            entry = info["niches"][niche]
            assert entry["sender"] == sender and entry["protein"] == protein
            assert list(entry["receivers"]) == list(receivers)
        assert (back.X != adata.X).nnz == 0
        pd.testing.assert_frame_equal(back.obs, adata.obs)


def test_visium_spots_mix_cells(spots):
    assert spots.n_obs == 400
    frac = spots.obsm["cell_type_fractions"]
    assert list(frac.columns) == list(spots.obs["cell_type"].cat.categories)
    occupied = spots.obs["n_cells"].to_numpy() > 0
    np.testing.assert_allclose(frac.to_numpy()[occupied].sum(axis=1), 1.0)
    assert (frac.to_numpy()[occupied].max(axis=1) < 1).mean() > 0.5  # most spots are mixtures
    # hexagonal grid 100 µm apart
    xy = spots.obsm["spatial"]
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(d.min(axis=1), 100.0)
    total = np.asarray(spots.X.sum(axis=1)).ravel()
    assert 1000 < total[occupied].mean() < 3000
    assert (total[~occupied] == 0).all()
    expr = _gene(spots, "IFNG")
    send = spots.obs["is_sender"].to_numpy() & (spots.obs["niche"] == "IFNG_niche").to_numpy()
    assert expr[send].mean() > 5 * expr[~spots.obs["is_sender"].to_numpy()].mean()


def test_custom_niches_and_errors():
    adata = secact.datasets.simulate_spatial(
        200, cell_types=["A", "B"], niches={"n1": ("A", "TGFB1", ["B"])}, seed=1
    )
    assert list(adata.obs["niche"].cat.categories) == ["n1", NO_NICHE]
    assert set(adata.obs.loc[adata.obs["is_receiver"], "cell_type"]) == {"B"}
    with pytest.raises(ValueError, match="not in cell_types"):
        secact.datasets.simulate_spatial(200, niches={"n": ("X", "IFNG", ["tumor"])})
    with pytest.raises(ValueError, match="not a column of the signature"):
        secact.datasets.simulate_spatial(200, niches={"n": ("tumor", "NOPE", ["tumor"])})
    with pytest.raises(ValueError, match="layout"):
        secact.datasets.simulate_spatial(200, layout="slide-seq")
    with pytest.raises(ValueError, match="n_cells"):
        secact.datasets.simulate_spatial(5)
    with pytest.raises(ValueError, match="none"):
        secact.datasets.simulate_spatial(200, niches={NO_NICHE: ("tumor", "IFNG", ["tumor"])})
