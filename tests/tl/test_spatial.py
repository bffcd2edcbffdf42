"""``secact.tl.ccc_spatial`` and ``secact.tl.signaling_patterns`` on planted spatial niches.

The tissue is ``secact.datasets.simulate_spatial`` with its default niches: a jittered
40 x 40 grid of cells 10 µm apart, four cell types, and three disks where a sender type in
the core over-expresses IFNG (T cells), TGFB1 (fibroblasts) or IL6 (macrophages) and the
receiver types in the disk answer with CytoSig's response.

Cell-level activity comes from ``secact.tl.activity(..., method="analytic")`` on CytoSig.
"""

from __future__ import annotations

import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import secact
from secact.core import spatial
from secact.datasets._simulate_spatial import DEFAULT_NICHES, NO_NICHE

PLANTED = {  # (sender, protein, receiver) of the default niches, sender != receiver
    (sender, protein, receiver)
    for sender, protein, receivers in DEFAULT_NICHES.values()
    for receiver in receivers
    if receiver != sender
}
PROTEINS = {protein for _, protein, _ in DEFAULT_NICHES.values()}


def _tissue(seed: int = 0) -> ad.AnnData:
    return secact.datasets.simulate_spatial(1600, seed=seed)


@pytest.fixture(scope="module")
def tissue() -> ad.AnnData:
    adata = _tissue()
    secact.tl.activity(adata, "CytoSig", method="analytic", stats=["zscore"])
    return adata


# ----------------------------------------------------------------------------------------------
# ccc_spatial
# ----------------------------------------------------------------------------------------------
def test_ccc_spatial_recovers_planted_pairs(tissue):
    # ratio_cutoff=0.1: the sender types also live outside their niches, so most of their
    # tissue-wide neighbour pairs cannot communicate and R's 0.2 is too strict here
    out = secact.tl.ccc_spatial(tissue, "cell_type", radius=15, ratio_cutoff=0.1, copy=True)
    entry = out.uns["secact_ccc_spatial"]
    table = entry["links"]
    assert list(table.columns) == list(spatial.CCC_COLUMNS)
    assert "secact_ccc_spatial" not in tissue.uns  # copy=True leaves the input alone
    corr = entry["spatial_correlation"]
    kept = set(corr.index[(corr["r"] > 0.05) & (corr["padj"] < 0.01)])
    assert PROTEINS <= kept
    # the three planted proteins correlate best with their neighbours' expression
    assert set(corr["r"].dropna().nlargest(3).index) == PROTEINS
    links = set(zip(table["sender"], table["secreted_protein"], table["receiver"], strict=True))
    assert links <= PLANTED  # precision: every link found was planted
    assert len(links) >= len(PLANTED) - 2  # recall: at most two planted links missed
    for sender, protein, _ in DEFAULT_NICHES.values():  # every niche is found, with its sender
        rows = table[table["secreted_protein"] == protein]
        assert len(rows) and (rows["sender"] == sender).all(), protein
    # the strongest link is IFNG from T cells (the strongest response of the three)
    top = table.loc[table["strength"].idxmax()]
    assert (top["sender"], top["secreted_protein"]) == ("T_cell", "IFNG")
    assert (table["padj"].diff().dropna() >= 0).all()
    assert (table["ratio"] > 0.1).all() and (table["padj"] < 0.01).all()


def test_ccc_spatial_counts_match_neighbour_pairs(tissue):
    out = secact.tl.ccc_spatial(tissue, "cell_type", radius=15, ratio_cutoff=0.0, padj_cutoff=1.1, copy=True)
    row = out.uns["secact_ccc_spatial"]["links"].loc["T_cell_IFNG_tumor"]
    xy = tissue.obsm["spatial"]
    t = tissue.obs["cell_type"].to_numpy()
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    pairs = np.argwhere((d > 0) & (d <= 15) & (t[:, None] == "T_cell") & (t[None, :] == "tumor"))
    assert row["neighboring_pairs"] == len(pairs)
    assert row["sender_count"] == (t == "T_cell").sum()
    assert row["receiver_count"] == (t == "tumor").sum()
    counts = tissue.X.toarray().astype(float)
    g = list(tissue.var_names).index("IFNG")
    expr = np.log2(counts[:, g] / counts.sum(axis=1) * 1000 + 1)
    act = np.maximum(tissue.obsm["secact_zscore"]["IFNG"].to_numpy(), 0)
    prod = expr[pairs[:, 0]] * act[pairs[:, 1]]
    assert row["strength"] == pytest.approx(prod.mean())
    assert row["communicating_pairs"] == (prod > 0).sum()


def test_ccc_spatial_deterministic_and_seeded(tissue):
    a = secact.tl.ccc_spatial(
        tissue, "cell_type", radius=15, n_background=200, seed=1, padj_cutoff=1.1, ratio_cutoff=0.0, copy=True
    )
    b = secact.tl.ccc_spatial(
        tissue, "cell_type", radius=15, n_background=200, seed=1, padj_cutoff=1.1, ratio_cutoff=0.0, copy=True
    )
    c = secact.tl.ccc_spatial(
        tissue, "cell_type", radius=15, n_background=200, seed=2, padj_cutoff=1.1, ratio_cutoff=0.0, copy=True
    )
    ta, tb, tc = (x.uns["secact_ccc_spatial"]["links"] for x in (a, b, c))
    pd.testing.assert_frame_equal(ta, tb)
    assert set(ta.index) == set(tc.index)
    tc = tc.loc[ta.index]
    pd.testing.assert_series_equal(ta["strength"], tc["strength"])
    assert not np.array_equal(ta["pvalue"].to_numpy(), tc["pvalue"].to_numpy())
    assert (ta["pvalue"] >= 1 / 201).all()


def test_ccc_spatial_writes_h5ad(tissue, tmp_path):
    out = secact.tl.ccc_spatial(tissue, "cell_type", radius=15, n_background=100, copy=True)
    path = tmp_path / "ccc.h5ad"
    out.write_h5ad(path)
    back = ad.read_h5ad(path)
    got = back.uns["secact_ccc_spatial"]["links"]
    pd.testing.assert_frame_equal(got, out.uns["secact_ccc_spatial"]["links"], check_dtype=False)
    assert back.uns["secact_ccc_spatial"]["params"]["radius"] == 15


def test_ccc_spatial_errors(tissue):
    bare = tissue.copy()
    del bare.obsm["secact_zscore"]
    with pytest.raises(KeyError, match=r"secact.tl.activity"):
        secact.tl.ccc_spatial(bare, "cell_type")
    nocoord = tissue.copy()
    del nocoord.obsm["spatial"]
    with pytest.raises(KeyError, match="coordinates"):
        secact.tl.ccc_spatial(nocoord, "cell_type")
    with pytest.raises(KeyError, match="not a column of obs"):
        secact.tl.ccc_spatial(tissue, "celltype")
    with pytest.raises(ValueError, match="n_background"):
        secact.tl.ccc_spatial(tissue, "cell_type", n_background=0)
    with pytest.raises(ValueError, match="radius"):
        secact.tl.ccc_spatial(tissue, "cell_type", radius=-1)
    logged = tissue.copy()
    logged.X = logged.X.copy()
    logged.X.data = -logged.X.data
    with pytest.raises(ValueError, match="raw counts"):
        secact.tl.ccc_spatial(logged, "cell_type")


# ----------------------------------------------------------------------------------------------
# signaling_patterns
# ----------------------------------------------------------------------------------------------
def _pattern_of(loadings: pd.DataFrame, protein: str) -> str:
    return str(loadings.loc[protein].idxmax())


def test_signaling_patterns_recover_niches(tissue):
    out = secact.tl.signaling_patterns(tissue, 3, radius=30, sigma=15, copy=True)
    weights = out.obsm["secact_patterns"]
    entry = out.uns["secact_patterns"]
    loadings = entry["loadings"]
    assert list(weights.columns) == ["1", "2", "3"] == list(loadings.columns)
    assert entry["k"] == 3
    assert PROTEINS <= set(loadings.index)
    niche = out.obs["niche"].to_numpy()
    found = {}
    for where, (_, protein, _) in DEFAULT_NICHES.items():
        pat = _pattern_of(loadings, protein)
        found[protein] = pat
        inside = weights.loc[niche == where, pat].mean()
        outside = weights.loc[niche != where, pat].mean()
        assert inside > 2 * outside, (protein, inside, outside)
    assert len(set(found.values())) == 3  # one pattern per niche
    assert (weights.to_numpy() >= 0).all()


def test_signaling_patterns_choose_k_by_rs_rule(tissue, tmp_path):
    out = secact.tl.signaling_patterns(tissue, [2, 3], radius=30, sigma=15, n_runs=2, copy=True)
    entry = out.uns["secact_patterns"]
    sil = entry["silhouette"]
    assert list(sil["k"]) == [2, 3]
    assert entry["k"] == spatial.choose_rank([2, 3], sil["silhouette"].to_numpy())
    assert out.obsm["secact_patterns"].shape == (out.n_obs, entry["k"])
    again = secact.tl.signaling_patterns(tissue, [2, 3], radius=30, sigma=15, n_runs=2, copy=True)
    pd.testing.assert_frame_equal(again.obsm["secact_patterns"], out.obsm["secact_patterns"])
    path = tmp_path / "patterns.h5ad"
    out.write_h5ad(path)
    back = ad.read_h5ad(path)
    np.testing.assert_allclose(
        np.asarray(back.obsm["secact_patterns"]), out.obsm["secact_patterns"].to_numpy()
    )
    pd.testing.assert_frame_equal(back.uns["secact_patterns"]["loadings"], entry["loadings"])


def test_signaling_patterns_errors(tissue, monkeypatch):
    with pytest.raises(ValueError, match="fewer than"):
        secact.tl.signaling_patterns(tissue, 40, radius=30, sigma=15, copy=True)
    with pytest.raises(ValueError, match="positive integer"):
        secact.tl.signaling_patterns(tissue, [2, 2], copy=True)
    monkeypatch.setitem(sys.modules, "sklearn.decomposition", None)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        secact.tl.signaling_patterns(tissue, 2, radius=30, sigma=15, copy=True)


# ----------------------------------------------------------------------------------------------
# signaling_velocity
# ----------------------------------------------------------------------------------------------
def _velocity_loops(xy, expr, act, radius, sigma, mode, senders=None, receivers=None):
    """R's spotST loop: per cell, weighted unit vectors to (or from) its partners, mean,
    rescaled to unit length, times the summed weight."""
    n = len(xy)
    out = np.zeros((n, 2))
    for c in range(n):
        vecs, ws = [], []
        for o in range(n):
            d = np.hypot(*(xy[o] - xy[c]))
            if o == c or d == 0 or d > radius:
                continue
            i, j = (c, o) if mode == "sending" else (o, c)
            if senders is not None and not senders[i]:
                continue
            if receivers is not None and not receivers[j]:
                continue
            w = (1.0 if sigma is None else np.exp(-(d**2) / (2 * sigma**2))) * expr[i] * act[j]
            if w > 0:
                vecs.append((xy[j] - xy[i]) / d * w)
                ws.append(w)
        if not ws:
            continue
        mean = np.mean(vecs, axis=0)
        out[c] = mean / np.hypot(*mean) * np.sum(ws)
    return out


@pytest.mark.parametrize("mode", ["receiving", "sending"])
@pytest.mark.parametrize("sigma", [1.5, None])
def test_velocity_equals_loops(mode, sigma):
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 10, (60, 2))
    expr = rng.exponential(1.0, 60) * (rng.uniform(size=60) < 0.5)
    act = np.maximum(rng.normal(size=60), 0)
    got = spatial.velocity(xy, expr, act, 2.5, sigma=sigma, mode=mode)
    want = _velocity_loops(xy, expr, act, 2.5, sigma, mode)
    assert np.abs(want).sum() > 0 and (np.hypot(*want.T) == 0).sum() > 0  # both kinds of cell
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    senders, receivers = rng.uniform(size=60) < 0.5, rng.uniform(size=60) < 0.5
    got = spatial.velocity(xy, expr, act, 2.5, sigma=sigma, mode=mode, senders=senders, receivers=receivers)
    want = _velocity_loops(xy, expr, act, 2.5, sigma, mode, senders, receivers)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def _outward_cosine(adata, vec, m):
    """Cosine of each cell's vector with the direction from niche m's centre to the cell."""
    out = adata.obsm["spatial"] - adata.uns["simulation"]["centers"][m]
    length = np.hypot(*vec.T) * np.hypot(*out.T)
    return np.divide((vec * out).sum(axis=1), length, out=np.full(len(vec), np.nan), where=length > 0)


def test_velocity_receiving_flows_out_of_the_sender_core(tissue):
    info = tissue.uns["simulation"]
    r = np.hypot(*(tissue.obsm["spatial"][:, None, :] - info["centers"][None]).transpose(2, 0, 1))
    for m, (niche, entry) in enumerate(info["niches"].items()):
        out = secact.tl.signaling_velocity(tissue, entry["protein"], radius=30, sigma=15, copy=True)
        vec = out.obsm["secact_velocity"]
        assert vec.shape == (tissue.n_obs, 2)
        assert out.uns["secact_velocity"]["mode"] == "receiving"
        inside = (tissue.obs["niche"] == niche).to_numpy()
        # receivers around the sender core get the signal from the core: pointing outwards
        rim = inside & tissue.obs["is_receiver"].to_numpy() & (r[:, m] > 0.6 * info["core_radius"])
        cos = _outward_cosine(tissue, vec, m)
        assert np.nanmean(cos[rim]) > 0.3, (niche, np.nanmean(cos[rim]))
        # outside the niches hardly any signal arrives
        length = np.hypot(*vec.T)
        assert (
            length[~inside & (tissue.obs["niche"] == NO_NICHE).to_numpy()].mean() < 0.1 * length[rim].mean()
        )


def test_velocity_sending_points_to_planted_receivers(tissue):
    xy = tissue.obsm["spatial"]
    rec = tissue.obs["is_receiver"].to_numpy()
    for niche, entry in tissue.uns["simulation"]["niches"].items():
        out = secact.tl.signaling_velocity(
            tissue, entry["protein"], mode="sending", radius=30, sigma=15, copy=True
        )
        vec = out.obsm["secact_velocity"]
        senders = np.flatnonzero(
            tissue.obs["is_sender"].to_numpy() & (tissue.obs["niche"] == niche).to_numpy()
        )
        cos = []
        for s in senders:  # direction to the planted receivers within reach (truth, not activity)
            d = np.hypot(*(xy - xy[s]).T)
            near = rec & (d > 0) & (d <= 30) & (tissue.obs["niche"] == niche).to_numpy()
            target = ((xy[near] - xy[s]) / d[near, None]).sum(axis=0) if near.any() else np.zeros(2)
            length = np.hypot(*vec[s]) * np.hypot(*target)
            if length > 0:
                cos.append(vec[s] @ target / length)
        assert len(cos) > 10 and np.mean(cos) > 0.3, (niche, np.mean(cos))
        length = np.hypot(*vec.T)
        elsewhere = (tissue.obs["niche"] == NO_NICHE).to_numpy()
        assert length[elsewhere].mean() < 0.05 * length[senders].mean()


def test_velocity_sender_receiver_types_and_h5ad(tissue, tmp_path):
    out = secact.tl.signaling_velocity(
        tissue,
        "IFNG",
        radius=20,
        sigma=None,
        groupby="cell_type",
        sender="T_cell",
        receiver=["tumor"],
        copy=True,
    )
    vec = out.obsm["secact_velocity"]
    moving = np.hypot(*vec.T) > 0
    assert moving.sum() > 10
    assert (tissue.obs.loc[moving, "cell_type"] == "tumor").all()  # only tumor cells receive
    out.write_h5ad(tmp_path / "v.h5ad")
    back = ad.read_h5ad(tmp_path / "v.h5ad")
    np.testing.assert_array_equal(back.obsm["secact_velocity"], vec)
    assert back.uns["secact_velocity"]["protein"] == "IFNG"
    assert "sigma" not in back.uns["secact_velocity"]["params"]  # None is not stored
    assert back.uns["secact_velocity"]["params"]["sender"] == "T_cell"


def test_velocity_errors(tissue):
    with pytest.raises(ValueError, match="mode"):
        secact.tl.signaling_velocity(tissue, "IFNG", mode="both", copy=True)
    with pytest.raises(KeyError, match="not a protein"):
        secact.tl.signaling_velocity(tissue, "NOPE", copy=True)
    with pytest.raises(ValueError, match="groupby"):
        secact.tl.signaling_velocity(tissue, "IFNG", sender="T_cell", copy=True)
    with pytest.raises(ValueError, match="not in obs"):
        secact.tl.signaling_velocity(tissue, "IFNG", groupby="cell_type", sender="B_cell", copy=True)
    with pytest.raises(KeyError, match="no gene"):
        secact.tl.signaling_velocity(tissue, "IL2", copy=True)
    with pytest.raises(ValueError, match="sigma"):
        secact.tl.signaling_velocity(tissue, "IFNG", sigma=0, copy=True)


# ----------------------------------------------------------------------------------------------
# backed AnnData, .h5ad paths, activity from a sidecar: the same numbers as in memory
# ----------------------------------------------------------------------------------------------
CCC_ARGS = {"radius": 15, "n_background": 100, "ratio_cutoff": 0.0, "padj_cutoff": 1.1}
PATTERN_ARGS = {"radius": 30, "sigma": 15}
VELOCITY_ARGS = {"radius": 30, "sigma": 15}


@pytest.fixture(scope="module")
def tissue_file(tissue, tmp_path_factory) -> str:
    """The tissue with its counts (CSR) and activity in obsm, written to disk."""
    path = tmp_path_factory.mktemp("spatial") / "tissue.h5ad"
    tissue.write_h5ad(path)
    return str(path)


@pytest.fixture(scope="module")
def in_memory(tissue):
    """The three tools' results on the in-memory tissue (the reference of the backed runs)."""
    return {
        "ccc": secact.tl.ccc_spatial(tissue, "cell_type", **CCC_ARGS, copy=True).uns["secact_ccc_spatial"],
        "patterns": secact.tl.signaling_patterns(tissue, 3, **PATTERN_ARGS, copy=True),
        "velocity": secact.tl.signaling_velocity(tissue, "IFNG", **VELOCITY_ARGS, copy=True),
    }


def _same_ccc(got: dict, want: dict) -> None:
    assert len(want["links"]) > 10  # a real table, not two empty ones
    pd.testing.assert_frame_equal(got["links"], want["links"], check_exact=True)
    pd.testing.assert_frame_equal(got["spatial_correlation"], want["spatial_correlation"], check_exact=True)


def _count_blocks(monkeypatch, batch: int) -> list[int]:
    """Make the pass read ``batch`` cells at a time and record each block's number of cells."""
    monkeypatch.setattr(secact.settings, "batch_size", batch)
    seen: list[int] = []
    call = spatial.GeneExpression.__call__

    def counting(self, block, start):
        seen.append(block.shape[0])
        return call(self, block, start)

    monkeypatch.setattr(spatial.GeneExpression, "__call__", counting)
    return seen


def test_ccc_spatial_backed_reads_blocks_and_equals_in_memory(tissue_file, in_memory, monkeypatch, tmp_path):
    seen = _count_blocks(monkeypatch, 300)
    backed = ad.read_h5ad(tissue_file, backed="r")
    assert secact.tl.ccc_spatial(backed, "cell_type", **CCC_ARGS) is None
    assert seen == [300] * 5 + [100]  # 1,600 cells in blocks of 300, never all at once
    assert backed.isbacked  # nothing was loaded into memory for good
    _same_ccc(backed.uns["secact_ccc_spatial"], in_memory["ccc"])
    backed.write_h5ad(tmp_path / "with_results.h5ad")  # results of a backed object are writable
    back = ad.read_h5ad(tmp_path / "with_results.h5ad")
    pd.testing.assert_frame_equal(
        back.uns["secact_ccc_spatial"]["links"], in_memory["ccc"]["links"], check_dtype=False
    )
    backed.file.close()


def test_ccc_spatial_path_input_returns_results(tissue_file, in_memory):
    got = secact.tl.ccc_spatial(tissue_file, "cell_type", **CCC_ARGS)
    # a path input: a new AnnData of the file's cells holding the results, as every tool
    assert isinstance(got, ad.AnnData) and got.n_vars == 0
    assert got.obs_names.equals(ad.read_h5ad(tissue_file, backed="r").obs_names)
    assert set(got.uns["secact_ccc_spatial"]) == {"links", "spatial_correlation", "params"}
    _same_ccc(got.uns["secact_ccc_spatial"], in_memory["ccc"])
    assert "secact_ccc_spatial" not in ad.read_h5ad(tissue_file, backed="r").uns  # file untouched


def test_signaling_patterns_backed_and_path_equal_in_memory(tissue_file, in_memory, monkeypatch):
    want = in_memory["patterns"]
    seen = _count_blocks(monkeypatch, 512)
    backed = ad.read_h5ad(tissue_file, backed="r")
    secact.tl.signaling_patterns(backed, 3, **PATTERN_ARGS)
    assert seen == [512, 512, 512, 64]
    pd.testing.assert_frame_equal(
        backed.obsm["secact_patterns"], want.obsm["secact_patterns"], check_exact=True
    )
    for name in ("loadings", "spatial_correlation"):
        pd.testing.assert_frame_equal(
            backed.uns["secact_patterns"][name], want.uns["secact_patterns"][name], check_exact=True
        )
    backed.file.close()
    got = secact.tl.signaling_patterns(tissue_file, 3, **PATTERN_ARGS)
    pd.testing.assert_frame_equal(got.obsm["secact_patterns"], want.obsm["secact_patterns"], check_exact=True)
    pd.testing.assert_frame_equal(
        got.uns["secact_patterns"]["loadings"], want.uns["secact_patterns"]["loadings"], check_exact=True
    )
    assert got.uns["secact_patterns"]["k"] == 3
    np.testing.assert_array_equal(got.obsm["spatial"], want.obsm["spatial"])  # carried, to draw them


def test_signaling_velocity_backed_and_path_equal_in_memory(tissue_file, in_memory, monkeypatch):
    want = in_memory["velocity"].obsm["secact_velocity"]
    assert np.hypot(*want.T).max() > 0
    seen = _count_blocks(monkeypatch, 1000)
    backed = ad.read_h5ad(tissue_file, backed="r")
    secact.tl.signaling_velocity(backed, "IFNG", **VELOCITY_ARGS)
    assert seen == [1000, 600]
    np.testing.assert_array_equal(backed.obsm["secact_velocity"], want)
    assert backed.uns["secact_velocity"]["protein"] == "IFNG"
    backed.file.close()
    got = secact.tl.signaling_velocity(tissue_file, "IFNG", **VELOCITY_ARGS)
    np.testing.assert_array_equal(got.obsm["secact_velocity"], want)
    assert got.uns["secact_velocity"]["mode"] == "receiving"


def test_backed_counts_layer_and_batch_size_do_not_change_results(tissue, in_memory, tmp_path, monkeypatch):
    """Counts in a layer (X holds something else), dense on disk, tiny blocks: same numbers."""
    other = tissue.copy()
    other.layers["counts"] = other.X.toarray()
    other.X = np.zeros(other.shape, dtype=np.float32)
    path = tmp_path / "layer.h5ad"
    other.write_h5ad(path)
    monkeypatch.setattr(secact.settings, "batch_size", 7)
    backed = ad.read_h5ad(path, backed="r")
    got = secact.tl.ccc_spatial(backed, "cell_type", layer="counts", **CCC_ARGS)
    assert got is None
    want = in_memory["ccc"]
    # dense storage sums a cell's counts in another order than CSR, exactly for integer counts
    _same_ccc(backed.uns["secact_ccc_spatial"], want)
    backed.file.close()


def test_activity_from_a_sidecar(tissue, tmp_path):
    """A backed atlas whose activity streamed to a sidecar: found through uns, or passed."""
    bare = tissue.copy()
    del bare.obsm["secact_zscore"], bare.uns["secact"]
    path = tmp_path / "atlas.h5ad"
    bare.write_h5ad(path)
    side = tmp_path / "atlas_secact.h5ad"
    atlas = ad.read_h5ad(path, backed="r")
    secact.tl.activity(atlas, "CytoSig", method="analytic", stats=["zscore"], out=side)
    assert "secact_zscore" not in atlas.obsm
    secact.tl.signaling_velocity(atlas, "IFNG", **VELOCITY_ARGS)  # the sidecar named in uns
    zscore = ad.read_h5ad(side).to_df()
    # the same as an in-memory run given the same activity, as a path, an AnnData or a DataFrame
    for activity in (side, ad.read_h5ad(side), ad.read_h5ad(side, backed="r"), zscore.iloc[::-1]):
        want = secact.tl.signaling_velocity(bare, "IFNG", activity=activity, **VELOCITY_ARGS, copy=True)
        np.testing.assert_array_equal(atlas.obsm["secact_velocity"], want.obsm["secact_velocity"])
    assert np.hypot(*atlas.obsm["secact_velocity"].T).max() > 0
    atlas.file.close()
    # a path input with the sidecar
    got = secact.tl.signaling_velocity(path, "IFNG", activity=side, **VELOCITY_ARGS)
    np.testing.assert_array_equal(got.obsm["secact_velocity"], want.obsm["secact_velocity"])


def test_backed_and_path_errors(tissue, tissue_file, tmp_path):
    backed = ad.read_h5ad(tissue_file, backed="r")
    with pytest.raises(ValueError, match=r"copy=True cannot hold.*to_memory"):
        secact.tl.ccc_spatial(backed, "cell_type", copy=True)
    with pytest.raises(ValueError, match=r"view of a backed AnnData.*to_memory"):
        secact.tl.signaling_velocity(backed[:100], "IFNG")
    backed.file.close()
    with pytest.raises(ValueError, match="path input is never modified"):
        secact.tl.signaling_patterns(tissue_file, 2, copy=True)
    with pytest.raises(FileNotFoundError, match=r"no \.h5ad file"):
        secact.tl.ccc_spatial(tmp_path / "missing.h5ad", "cell_type")
    bare = tissue.copy()
    del bare.obsm["secact_zscore"]
    bare.write_h5ad(tmp_path / "bare.h5ad")
    with pytest.raises(KeyError, match=r"Run secact.tl.activity.*activity="):
        secact.tl.ccc_spatial(tmp_path / "bare.h5ad", "cell_type")
    with pytest.raises(FileNotFoundError, match="sidecar"):
        secact.tl.ccc_spatial(bare, "cell_type", activity=tmp_path / "nope.h5ad")
    with pytest.raises(TypeError, match="activity must be"):
        secact.tl.ccc_spatial(bare, "cell_type", activity=np.zeros((bare.n_obs, 3)))
    z = tissue.obsm["secact_zscore"]
    with pytest.raises(ValueError, match="no row for cells"):
        secact.tl.ccc_spatial(bare, "cell_type", activity=z.iloc[1:])
    with pytest.raises(KeyError, match="obsm"):
        secact.tl.signaling_velocity(tmp_path / "bare.h5ad", "IFNG", spatial_key="xy", activity=z)
