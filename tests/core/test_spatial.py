"""``secact.core.spatial`` against brute-force re-derivations (loops, scipy, sklearn)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from secact.core import spatial


def _cells(n=50, seed=1):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    xy[7] = xy[3]  # coincident cells are not neighbours (R: distance > 0)
    return xy


def _brute_pairs(xy, radius):
    out = []
    for a in range(len(xy)):
        for b in range(len(xy)):
            d = float(np.hypot(*(xy[a] - xy[b])))
            if 0 < d <= radius:
                out.append((a, b, d))
    return out


def test_neighbor_pairs_match_double_loop():
    xy = _cells()
    i, j, d = spatial.neighbor_pairs(xy, 20.0)
    ref = _brute_pairs(xy, 20.0)
    assert len(ref) > 50
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(a, b) for a, b, _ in ref]
    np.testing.assert_allclose(d, [x for *_, x in ref])
    assert (3, 7) not in set(zip(i.tolist(), j.tolist(), strict=True))


@pytest.mark.parametrize("bad", [0, -1.0, np.nan])
def test_neighbor_pairs_rejects_bad_radius(bad):
    with pytest.raises(ValueError, match="radius"):
        spatial.neighbor_pairs(_cells(), bad)


def test_neighbor_pairs_rejects_nan_coordinates():
    xy = _cells()
    xy[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        spatial.neighbor_pairs(xy, 10.0)


def test_neighbor_weights_binary_and_gaussian():
    xy = _cells()
    i, j, d = spatial.neighbor_pairs(xy, 30.0)
    w1 = spatial.neighbor_weights(len(xy), i, j, d).toarray()
    wg = spatial.neighbor_weights(len(xy), i, j, d, sigma=10.0).toarray()
    for a, b, dist in _brute_pairs(xy, 30.0):
        assert w1[a, b] == 1.0
        assert wg[a, b] == pytest.approx(np.exp(-(dist**2) / 200.0))
    assert (w1 != 0).sum() == len(i)
    np.testing.assert_array_equal(np.diag(wg), 0.0)
    np.testing.assert_array_equal(w1, w1.T)


def test_log_normalize_dense_sparse_and_library_size():
    rng = np.random.default_rng(2)
    x = rng.poisson(2.0, (20, 30)).astype(float)
    x[4] = 0.0
    ref = np.zeros_like(x)
    for c in range(20):
        tot = x[c].sum()
        if tot > 0:
            ref[c] = np.log2(x[c] / tot * 1000 + 1)
    # R's arithmetic in R's order: bit for bit
    np.testing.assert_array_equal(spatial.log_normalize(x, 1000), ref)
    np.testing.assert_array_equal(spatial.log_normalize(sp.csr_matrix(x), 1000).toarray(), ref)
    cols = [1, 5, 9]
    sub = spatial.log_normalize(x[:, cols], 1000, library_size=x.sum(axis=1))
    np.testing.assert_array_equal(sub, ref[:, cols])


def test_spatial_correlation_matches_scipy_spearman():
    rng = np.random.default_rng(3)
    n = 80
    act = np.maximum(rng.normal(size=(n, 5)), 0.0)  # ties at 0, as after clipping
    aggr = rng.poisson(1.0, (n, 5)).astype(float)
    aggr[:, 1] = act[:, 1] * 2 + rng.normal(0, 0.1, n)
    aggr[:, 3] = np.nan  # protein without a gene
    aggr[:, 4] = 1.0  # constant
    r, p, q = spatial.spatial_correlation(act, aggr)
    for c in (0, 1, 2):
        ref = stats.spearmanr(act[:, c], aggr[:, c])
        assert r[c] == pytest.approx(ref.statistic, rel=1e-12)
        assert p[c] == pytest.approx(ref.pvalue, rel=1e-9)
    assert np.isnan(r[3:]).all() and np.isnan(p[3:]).all() and np.isnan(q[3:]).all()
    np.testing.assert_allclose(q[:3], stats.false_discovery_control(p[:3], method="bh"))


def test_neighbor_products_match_double_loop():
    rng = np.random.default_rng(4)
    xy = _cells()
    n = len(xy)
    expr = rng.poisson(0.7, (n, 3)).astype(float)
    act = np.maximum(rng.normal(size=(n, 3)), 0.0)
    kind = rng.integers(0, 2, n)
    i, j, _ = spatial.neighbor_pairs(xy, 25.0)
    sel = (kind[i] == 0) & (kind[j] == 1)
    mean, pos = spatial.neighbor_products(expr, act, i[sel], j[sel])
    for p in range(3):
        vals = [
            expr[a, p] * act[b, p]
            for a in range(n)
            for b in range(n)
            if kind[a] == 0 and kind[b] == 1 and 0 < np.hypot(*(xy[a] - xy[b])) <= 25.0
        ]
        assert len(vals) == sel.sum() > 0
        assert mean[p] == pytest.approx(np.mean(vals))
        assert pos[p] == sum(v > 0 for v in vals)


def test_background_means_are_seeded_loops_and_chunk_free():
    rng = np.random.default_rng(5)
    expr = rng.poisson(1.0, (40, 2)).astype(float)
    act = rng.uniform(size=(40, 2))
    s_cells, r_cells = np.arange(0, 15), np.arange(15, 40)
    fwd, rev = spatial.background_means(expr, act, s_cells, r_cells, 7, 30, np.random.default_rng(9))
    small = spatial.background_means(
        expr, act, s_cells, r_cells, 7, 30, np.random.default_rng(9), chunk_elements=5
    )
    np.testing.assert_array_equal(fwd, small[0])
    np.testing.assert_array_equal(rev, small[1])
    g = np.random.default_rng(9)
    draws = [(g.choice(s_cells, size=7), g.choice(r_cells, size=7)) for _ in range(30)]
    s_all = np.array([d[0] for d in draws])
    r_all = np.array([d[1] for d in draws])
    for b in range(30):
        for p in range(2):
            assert fwd[b, p] == pytest.approx(
                np.mean([expr[s, p] * act[r, p] for s, r in zip(s_all[b], r_all[b], strict=True)])
            )
            assert rev[b, p] == pytest.approx(
                np.mean([expr[r, p] * act[s, p] for s, r in zip(s_all[b], r_all[b], strict=True)])
            )


def test_ccc_spatial_matches_brute_force():
    rng = np.random.default_rng(6)
    xy = _cells(80, seed=7)
    n = len(xy)
    labels = rng.integers(0, 2, n)
    cats = ["B", "A"]  # "B" > "A": code 0 sends first, as R's cellType1 > cellType2
    expr = rng.poisson(1.5, (n, 2)).astype(float)
    act = np.maximum(rng.normal(size=(n, 2)), 0.0)
    niche = (xy[:, 0] < 50) & (xy[:, 1] < 60)
    expr[:, 0] = np.where(niche, expr[:, 0] + 5.0, 0.0)  # protein 0 expressed in the niche ...
    act[:, 0] = np.where(niche, act[:, 0] + 3.0, 0.0)  # ... and active there only
    i, j, _ = spatial.neighbor_pairs(xy, 25.0)
    rows = spatial.ccc_spatial(
        expr,
        act,
        labels,
        cats,
        i,
        j,
        ["P0", "P1"],
        n_background=200,
        rng="numpy",
        seed=3,
        ratio_cutoff=0.2,
        padj_cutoff=1.01,
    )
    # brute force: pairs by a double loop, background by the same generator calls
    pairs = [(a, b) for a, b, _ in _brute_pairs(xy, 25.0) if labels[a] == 0 and labels[b] == 1]
    b_cells, a_cells = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    g = np.random.default_rng(3)
    draws = [(g.choice(b_cells, size=len(pairs)), g.choice(a_cells, size=len(pairs))) for _ in range(200)]
    s_all = np.array([d[0] for d in draws])
    r_all = np.array([d[1] for d in draws])
    expected = []
    for p in range(2):
        for fwd in (True, False):
            vals = [expr[a, p] * act[b, p] if fwd else expr[b, p] * act[a, p] for a, b in pairs]
            ratio = sum(v > 0 for v in vals) / len(vals)
            if ratio <= 0.2:
                continue
            bg = [
                np.mean(
                    [
                        expr[s, p] * act[r, p] if fwd else expr[r, p] * act[s, p]
                        for s, r in zip(s_all[k], r_all[k], strict=True)
                    ]
                )
                for k in range(200)
            ]
            strength = np.mean(vals)
            pv = (sum(x >= strength - 1e-12 for x in bg) + 1) / 201
            expected.append(
                ("B" if fwd else "A", f"P{p}", "A" if fwd else "B", len(pairs), ratio, strength, pv)
            )
    got_sorted = sorted(rows, key=lambda r: (r["secreted_protein"], r["sender"] == "A"))
    assert len(got_sorted) == len(expected) >= 3
    for r, (snd, prot, rcv, npairs, ratio, strength, pv) in zip(got_sorted, expected, strict=True):
        assert (r["sender"], r["secreted_protein"], r["receiver"]) == (snd, prot, rcv)
        assert r["neighboring_pairs"] == npairs
        assert r["ratio"] == pytest.approx(ratio)
        assert r["strength"] == pytest.approx(strength)
        assert r["pvalue"] == pytest.approx(pv)
    padj = stats.false_discovery_control([e[-1] for e in expected], method="bh")
    np.testing.assert_allclose([r["padj"] for r in got_sorted], padj)
    assert [r["padj"] for r in rows] == sorted(r["padj"] for r in rows)
    top = [r for r in rows if r["secreted_protein"] == "P0" and r["sender"] == "B"]
    assert top[0]["pvalue"] < 0.01  # the planted niche is significant
    assert top[0]["pvalue"] == min(r["pvalue"] for r in rows)


def test_ccc_spatial_skips_type_pairs_that_do_not_touch():
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [100.0, 0.0], [101.0, 0.0]])
    labels = np.array([0, 0, 1, 1])
    i, j, _ = spatial.neighbor_pairs(xy, 5.0)
    rows = spatial.ccc_spatial(
        np.ones((4, 1)), np.ones((4, 1)), labels, ["B", "A"], i, j, ["P"], padj_cutoff=2.0
    )
    assert rows == []


def test_choose_rank_is_rs_rule():
    # drops: 0.1, 0.4, 0.05 -> largest between k=3 and k=4 -> R picks k=4
    assert spatial.choose_rank([2, 3, 4, 5], [0.9, 0.8, 0.4, 0.35]) == 4
    assert spatial.choose_rank([2, 3], [0.5, 0.7]) == 3  # a rise is the largest "drop" too
    with pytest.raises(ValueError, match="at least two"):
        spatial.choose_rank([2], [0.5])


def test_silhouette_coef_matches_brute_force():
    rng = np.random.default_rng(8)
    h = rng.uniform(0, 0.3, (3, 40))
    cl = np.arange(40) % 3
    h[cl, np.arange(40)] += rng.uniform(1, 2, 40)
    d = 1 - np.corrcoef(h.T)
    s = []
    for c in range(40):
        own = [d[c, o] for o in range(40) if cl[o] == cl[c] and o != c]
        a = np.mean(own)
        b = min(np.mean([d[c, o] for o in range(40) if cl[o] == k]) for k in range(3) if k != cl[c])
        s.append((b - a) / max(a, b))
    assert spatial.silhouette_coef(h) == pytest.approx(np.mean(s))
    noise = rng.uniform(0, 1, (3, 40))
    assert spatial.silhouette_coef(noise) < spatial.silhouette_coef(h)


def test_nmf_recovers_planted_factors_deterministically():
    rng = np.random.default_rng(10)
    w0 = np.zeros((12, 2))
    w0[:6, 0] = rng.uniform(1, 2, 6)
    w0[6:, 1] = rng.uniform(1, 2, 6)
    h0 = np.zeros((2, 100))
    h0[0, :50] = rng.uniform(1, 3, 50)
    h0[1, 50:] = rng.uniform(1, 3, 50)
    v = w0 @ h0
    w, h = spatial.nmf(v, 2, seed=1, n_runs=3)
    w2, h2 = spatial.nmf(v, 2, seed=1, n_runs=3)
    np.testing.assert_array_equal(w, w2)
    np.testing.assert_array_equal(h, h2)
    assert np.abs(w @ h - v).max() < 1e-2 * v.max()
    # each fitted factor is one planted block of cells
    first = h[:, :50].mean(axis=1).argmax()
    assert h[first, :50].mean() > 20 * h[first, 50:].mean()
    assert h[1 - first, 50:].mean() > 20 * h[1 - first, :50].mean()
    with pytest.raises(ValueError, match="non-negative"):
        spatial.nmf(-v, 2)


# ----------------------------------------------------------------------------------------------
# R's arithmetic for SecAct.CCC.scST's p-values (tests/data/ccc_spatial/r_means.tsv, R 4.2.2)
# ----------------------------------------------------------------------------------------------
def _r_means() -> list[tuple[np.ndarray, float, float, bool]]:
    from pathlib import Path

    path = Path(__file__).parents[1] / "data" / "ccc_spatial" / "r_means.tsv"
    rows = []
    for line in path.read_text().splitlines()[1:]:
        _, values, mean, col_mean, ge = line.split("\t")
        rows.append((np.array([float(v) for v in values.split()]), float(mean), float(col_mean), ge == "1"))
    return rows


@pytest.mark.skipif(
    np.finfo(np.longdouble).nmant != 63, reason="R's values were made where long double is 80-bit"
)
def test_r_mean_and_col_means_equal_r():
    rows = _r_means()
    ref = [0, 0, 0, 3, 4, 5, 6, 7, 8, 8]  # as in make_r_means.R (0-based)
    for (x, mean, col_mean, ge), k in zip(rows, ref, strict=True):
        assert spatial.r_mean(x[:, None])[0] == mean
        assert spatial.r_col_means(x[:, None])[0] == col_mean
        assert (spatial.r_col_means(x[:, None])[0] >= spatial.r_mean(rows[k][0][:, None])[0]) == ge
    # plain double sums get some of these wrong (why R's arithmetic is needed)
    assert np.mean(rows[3][0]) != rows[3][1]
    assert np.mean(rows[9][0]) != rows[9][1]  # 0.3 then nine 0.1: 0.12000000000000002 in doubles


def test_count_at_least_decides_near_ties_with_r_arithmetic():
    rng = np.random.default_rng(0)
    obs_vals = rng.exponential(size=(12, 3))
    observed = spatial.r_mean(obs_vals)
    sets = np.stack([obs_vals[rng.permutation(12)] for _ in range(200)])  # same values, other orders
    sets[:50] *= 1 + 1e-9  # clearly above
    sets[50:100] *= 1 - 1e-9  # clearly below
    got = spatial._count_at_least(sets, observed)
    want = [
        sum(spatial.r_col_means(sets[b, :, k][:, None])[0] >= observed[k] for b in range(200))
        for k in range(3)
    ]
    np.testing.assert_array_equal(got, want)
    assert all(50 <= w <= 150 for w in want)
    naive = (sets.mean(axis=1) >= observed).sum(axis=0)
    assert not np.array_equal(naive, want)  # double means misjudge some of the reordered ties
