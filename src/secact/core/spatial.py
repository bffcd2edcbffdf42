"""Spatial downstream analyses on arrays: neighbours, spatial correlation, CCC, NMF patterns.

Array counterparts of SecAct R's ``SecAct.CCC.scST``, ``SecAct.signaling.pattern`` and
``SecAct.signaling.velocity.spotST`` (``R/downstream.R``) and their helpers ``find_neighbors``, ``calWeights``,
``normalize_log_sparse`` and ``compute_spatial_correlation`` (``R/ifun.R``). Cells are rows
everywhere (cells x genes, cells x proteins); nothing here knows about AnnData.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats
from scipy.spatial import cKDTree

from .ccc import p_adjust_bh
from .normalize import check_finite
from .rsample import RRandom

__all__ = [
    "CCC_COLUMNS",
    "RNG_KINDS",
    "GeneExpression",
    "background_means",
    "ccc_spatial",
    "choose_rank",
    "log_normalize",
    "neighbor_pairs",
    "neighbor_products",
    "neighbor_weights",
    "nmf",
    "r_as_character",
    "r_col_means",
    "r_mean",
    "silhouette_coef",
    "spatial_correlation",
    "velocity",
]

#: Background generators of :func:`ccc_spatial`: R's ``set.seed`` / ``sample`` or NumPy's.
RNG_KINDS = ("R", "numpy")

CCC_COLUMNS = (
    "sender",
    "secreted_protein",
    "receiver",
    "sender_count",
    "receiver_count",
    "neighboring_pairs",
    "communicating_pairs",
    "ratio",
    "strength",
    "pvalue",
    "padj",
)


def neighbor_pairs(coords, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed neighbouring cell pairs within ``radius`` (R's ``find_neighbors``).

    Every unordered pair at distance ``0 < d <= radius`` appears twice, as ``(i, j)`` and
    ``(j, i)``; coincident cells (``d == 0``) are not neighbours, as in R. Pairs are sorted by
    ``i`` then ``j``. Unlike R (``RANN::nn2`` with ``k = 100``) there is no cap on the number
    of neighbours per cell.

    Returns
    -------
    ``i``, ``j`` (int64) and the distances ``d``.
    """
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"coordinates must be cells x 2 (or more) numbers, got shape {xy.shape}.")
    if not np.isfinite(xy).all():
        raise ValueError("coordinates contain NaN or infinite values; drop or fix those cells first.")
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be a positive number, got {radius!r}.")
    pairs = cKDTree(xy).query_pairs(r=float(radius), output_type="ndarray").astype(np.int64)
    d = np.sqrt(((xy[pairs[:, 0]] - xy[pairs[:, 1]]) ** 2).sum(axis=1))
    keep = d > 0
    pairs, d = pairs[keep], d[keep]
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])
    d = np.concatenate([d, d])
    o = np.lexsort((j, i))
    return i[o], j[o], d[o]


def neighbor_weights(
    n: int, i: np.ndarray, j: np.ndarray, d: np.ndarray, *, sigma: float | None = None
) -> sp.csr_matrix:
    """Cells x cells weights of neighbouring pairs: 1 (``sigma=None``, R's ``SecAct.CCC.scST``)
    or the Gaussian kernel ``exp(-d^2 / (2 sigma^2))`` (R's ``calWeights``); zero diagonal."""
    x = np.ones(d.shape) if sigma is None else np.exp(-(d**2) / (2.0 * float(sigma) ** 2))
    return sp.csr_matrix((x, (i, j)), shape=(n, n))


def log_normalize(counts, scale_factor: float, library_size=None):
    """``log2(x / total * scale_factor + 1)`` per cell (R's ``normalize_log_sparse``).

    ``counts`` is cells x genes (dense or sparse, kept sparse). ``library_size`` gives each
    cell's total when ``counts`` holds only some of the genes (the totals are over all genes).
    The arithmetic is R's, in R's order (divide by the total, then multiply by
    ``scale_factor``). Cells with no counts stay zero (R would give NaN for a stored zero
    total).
    """
    total = (
        np.asarray(counts.sum(axis=1)).ravel() if library_size is None else np.asarray(library_size, float)
    )
    total = np.asarray(total, dtype=np.float64)
    safe = np.where(total > 0, total, 1.0)  # an empty cell has no stored (or only zero) counts
    if sp.issparse(counts):
        out = sp.csr_matrix(counts, dtype=np.float64, copy=True)
        out.data = np.log2(out.data / np.repeat(safe, np.diff(out.indptr)) * scale_factor + 1.0)
        return out
    return np.log2(np.asarray(counts, dtype=np.float64) / safe[:, None] * scale_factor + 1.0)


@dataclass(eq=False)
class GeneExpression:
    """One block of cells -> log-normalised expression of some of its genes.

    Called as ``fn(block, start)`` by :func:`secact.core.runner.run` over the blocks of all
    genes (cells x genes counts): each cell's library size is its total over the whole
    block, then the genes at ``columns`` are normalised with :func:`log_normalize`. Returns
    a dense ``cells x len(columns)`` float64 array. Negative values are an error (raw counts
    are expected).

    Attributes
    ----------
    columns
        Positions of the wanted genes among the block's columns.
    scale_factor
        Counts per cell before ``log2(x + 1)``.
    """

    columns: np.ndarray
    scale_factor: float

    def __call__(self, block, start: int) -> np.ndarray:
        check_finite(block, start)
        stored = block.data if sp.issparse(block) else np.asarray(block)
        if stored.size and stored.min() < 0:
            msg = (
                f"expression has negative values (cells {start}..{start + block.shape[0] - 1}); "
                "pass raw counts (layer= or use_raw=)."
            )
            raise ValueError(msg)
        total = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
        sub = block[:, self.columns]
        norm = log_normalize(sub, self.scale_factor, library_size=total)
        return norm.toarray() if sp.issparse(norm) else np.asarray(norm, dtype=np.float64)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks of each column (R's ``rank``, ties averaged)."""
    return np.column_stack([stats.rankdata(x[:, c]) for c in range(x.shape[1])]) if x.size else x


def spatial_correlation(act, expr_aggr) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spearman correlation of each protein's activity with its gene's neighbour expression.

    R's ``compute_spatial_correlation``: for every column, ``cor.test(act, expr_aggr,
    method="spearman")``; BH over the proteins with a value. ``act`` and ``expr_aggr`` are
    cells x proteins; a column of ``expr_aggr`` that is all NaN (no gene for the protein) or
    a constant column gives NaN. The p-value is R's large-sample one (Student t with
    ``n - 2`` degrees of freedom on ``r``), which R uses whenever there are ties or
    ``n > 1290``; for small tie-free data R uses the AS 89 Edgeworth series instead.

    Returns
    -------
    ``r``, ``pvalue``, ``padj`` (one per protein).
    """
    a = np.asarray(act, dtype=np.float64)
    e = np.asarray(expr_aggr.toarray() if sp.issparse(expr_aggr) else expr_aggr, dtype=np.float64)
    if a.shape != e.shape:
        raise ValueError(f"act and expr_aggr must have the same shape, got {a.shape} and {e.shape}.")
    n, m = a.shape
    r = np.full(m, np.nan)
    ok = ~np.isnan(e).any(axis=0) & ~np.isnan(a).any(axis=0)
    if n > 2 and ok.any():
        ra = _average_ranks(a[:, ok])
        re = _average_ranks(e[:, ok])
        ra -= ra.mean(axis=0)
        re -= re.mean(axis=0)
        den = np.sqrt((ra**2).sum(axis=0) * (re**2).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            r[ok] = np.where(den > 0, (ra * re).sum(axis=0) / den, np.nan)
    r = np.clip(r, -1.0, 1.0)
    p = np.full(m, np.nan)
    fin = np.isfinite(r)
    if n > 2:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = r[fin] / np.sqrt((1.0 - r[fin] ** 2) / (n - 2))
        p[fin] = np.minimum(1.0, 2.0 * stats.t.sf(np.abs(t), df=n - 2))
    return r, p, p_adjust_bh(p)


def neighbor_products(expr, act, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``expr[i] * act[j]`` over the pairs and the number of positive products.

    ``expr`` (sender gene expression) and ``act`` (receiver activity) are cells x proteins
    with matching columns; ``i`` and ``j`` index the sender and receiver cell of each pair.
    R's ``CCC_vec``: ``mean(CCC_vec)`` and ``sum(CCC_vec > 0)``, per protein.
    """
    e = np.asarray(expr, dtype=np.float64)
    a = np.asarray(act, dtype=np.float64)
    prod = e[i] * a[j]
    if prod.shape[0] == 0:
        return np.full(e.shape[1], np.nan), np.zeros(e.shape[1], dtype=np.int64)
    return prod.mean(axis=0), (prod > 0).sum(axis=0)


def background_means(
    expr,
    act,
    senders: np.ndarray,
    receivers: np.ndarray,
    n_pairs: int,
    n_background: int,
    rng: np.random.Generator,
    *,
    chunk_elements: int = 2**22,
) -> tuple[np.ndarray, np.ndarray]:
    """Background means of random sender-receiver pairs, in both directions.

    R's background in ``SecAct.CCC.scST``: ``n_background`` sets of ``n_pairs`` senders and
    receivers drawn with replacement from the two cell types (``senders``, ``receivers``),
    mean product per set. The same draws serve both directions (``expr[s] * act[r]`` and
    ``expr[r] * act[s]``), as in R. Each set draws its senders, then its receivers, from
    ``rng``; sets are evaluated in chunks of about ``chunk_elements`` products, so memory
    stays bounded (R holds all ``n_pairs * n_background`` draws at once).

    Returns
    -------
    Two ``n_background x proteins`` arrays: forward (senders express) and reverse.
    """
    e = np.asarray(expr, dtype=np.float64)
    a = np.asarray(act, dtype=np.float64)
    m = e.shape[1]
    fwd = np.empty((n_background, m))
    rev = np.empty((n_background, m))
    step = max(1, min(n_background, chunk_elements // max(1, n_pairs * m)))
    s = np.empty((step, n_pairs), dtype=np.int64)
    r = np.empty((step, n_pairs), dtype=np.int64)
    for b0 in range(0, n_background, step):
        nb = min(step, n_background - b0)
        for t in range(nb):  # one set at a time: the draws do not depend on the chunking
            s[t] = rng.choice(senders, size=n_pairs, replace=True)
            r[t] = rng.choice(receivers, size=n_pairs, replace=True)
        fwd[b0 : b0 + nb] = (e[s[:nb]] * a[r[:nb]]).mean(axis=1)
        rev[b0 : b0 + nb] = (e[r[:nb]] * a[s[:nb]]).mean(axis=1)
    return fwd, rev


def r_mean(x) -> np.ndarray:
    """R's ``mean()`` of each column of ``x`` (rows are the values), bit for bit.

    R sums in ``long double`` in order, divides by ``n``, then adds the mean of the residuals
    (a second ``long double`` pass) before rounding to double. NumPy's ``longdouble`` is the
    same C type as R's on the same platform (80-bit on x86-64 Linux and macOS, 64-bit on
    arm64 macOS) except on Windows, where R's is 80-bit and NumPy's 64-bit: there, means that
    tie to the last bits may compare otherwise than in R.
    """
    v = np.asarray(x, dtype=np.longdouble)
    n = v.shape[0]
    s = np.cumsum(v, axis=0)[-1] / n
    fin = np.isfinite(s.astype(np.float64))  # R: R_FINITE((double) s)
    t = np.cumsum(v - s, axis=0)[-1]
    s = np.where(fin, s + t / n, s)
    return np.asarray(s, dtype=np.float64)


def r_col_means(x) -> np.ndarray:
    """R's ``colMeans()`` of ``x`` (values in rows), bit for bit: one ``long double`` pass in order."""
    v = np.asarray(x, dtype=np.longdouble)
    return np.asarray(np.cumsum(v, axis=0)[-1] / v.shape[0], dtype=np.float64)


def r_as_character(x: float) -> float:
    """A number after R's ``as.numeric(as.character(x))``: 15 significant digits."""
    return float(f"{x:.15g}")


def _first_appearance(labels: np.ndarray) -> list[int]:
    """Codes ``>= 0`` in the order they first appear (R's ``unique``)."""
    codes, first = np.unique(labels[labels >= 0], return_index=True)
    return [int(c) for c in codes[np.argsort(first, kind="stable")]]


def _background_draws(n1: int, n2: int, n_pairs: int, n_background: int, rng: str, seed: int, gen, step: int):
    """Positions (into the two types' cells) of the background pairs, ``step`` sets at a time.

    Yields ``(b0, s, r)`` with ``s`` and ``r`` of shape ``(sets, n_pairs)``.

    ``rng="R"``: R's ``set.seed(seed)``, then all ``n_pairs * n_background`` senders by
    ``sample(cells1, ..., replace = TRUE)``, then all receivers; set ``b`` is draws
    ``b * n_pairs`` to ``(b + 1) * n_pairs - 1`` of each (R's ``matrix(..., nrow = n_pairs)``
    columns). In chunks, a second generator is moved past the senders first.
    ``rng="numpy"``: ``gen`` (one ``numpy.random.Generator`` for all type pairs); each set
    draws its senders, then its receivers.
    """
    if rng == "numpy":
        for b0 in range(0, n_background, step):
            nb = min(step, n_background - b0)
            s = np.empty((nb, n_pairs), dtype=np.int64)
            r = np.empty((nb, n_pairs), dtype=np.int64)
            for t in range(nb):
                s[t] = gen.choice(n1, size=n_pairs, replace=True)
                r[t] = gen.choice(n2, size=n_pairs, replace=True)
            yield b0, s, r
        return
    total = n_pairs * n_background
    stream = RRandom(seed)
    if step >= n_background:  # all at once, as R
        s = stream.sample_int(n1, total, replace=True)
        r = stream.sample_int(n2, total, replace=True)
        yield 0, s.reshape(n_background, n_pairs), r.reshape(n_background, n_pairs)
        return
    senders, receivers = stream.copy(), stream
    for a in range(0, total, step * n_pairs):  # move past the senders' draws
        receivers.sample_int(n1, min(step * n_pairs, total - a), replace=True)
    for b0 in range(0, n_background, step):
        nb = min(step, n_background - b0)
        s = senders.sample_int(n1, nb * n_pairs, replace=True).reshape(nb, n_pairs)
        r = receivers.sample_int(n2, nb * n_pairs, replace=True).reshape(nb, n_pairs)
        yield b0, s, r


def _count_at_least(prod: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per protein, how many sets' R ``colMeans`` of ``prod`` (sets x pairs x proteins) are
    ``>= observed``, exactly as R decides.

    Means are taken in double first; a set whose double mean is within the rounding bound of
    ``observed`` (``2 (n + 2) 2**-52`` times its mean absolute value, well above the error of
    either sum) is decided by R's own ``long double`` mean (:func:`r_col_means`).
    """
    n = prod.shape[1]
    mean = prod.mean(axis=1)
    scale = mean if (prod >= 0).all() else np.abs(prod).mean(axis=1)
    bound = 2.0 * (n + 2) * np.finfo(np.float64).eps * np.abs(scale)
    diff = mean - observed[None, :]
    with np.errstate(invalid="ignore"):
        counts = (diff > bound).sum(axis=0)
        close = np.abs(diff) <= bound
    b, k = np.nonzero(close)
    if b.size:
        exact = r_col_means(prod[b, :, k].T)  # pairs x close sets
        np.add.at(counts, k, exact >= observed[k])
    return counts


def ccc_spatial(
    expr,
    act,
    labels: np.ndarray,
    categories: Sequence[Any],
    i: np.ndarray,
    j: np.ndarray,
    proteins: Sequence[str],
    *,
    n_background: int = 1000,
    rng: str = "R",
    seed: int = 123,
    ratio_cutoff: float = 0.2,
    padj_cutoff: float = 0.01,
    min_fraction: float = 0.05,
    chunk_elements: int = 2**22,
) -> list[dict[str, Any]]:
    """Cell-cell communication between neighbouring cells of two types (R's step 2).

    For every pair of cell types, in R's order (types by first appearance among the
    labelled cells; ``c1`` outer, ``c2`` inner; kept when ``categories[c1] > categories[c2]``
    as strings, R's ``cellType1 > cellType2``), the neighbouring pairs with the first cell of
    type ``c1`` and the second of type ``c2`` are scored in both directions, per protein:
    sender expression times receiver activity, ``ratio`` = fraction of positive products
    (kept when ``> ratio_cutoff``), ``strength`` = mean product and ``pvalue = (#background >=
    strength + 1) / (n_background + 1)``. Type pairs where under ``min_fraction`` of both
    types' cells take part are skipped. BH runs over all kept rows; rows with ``padj <
    padj_cutoff`` are returned, sorted by ``padj`` (stable).

    With ``rng="R"`` the background is SecAct R's draw for draw: ``set.seed(seed)`` for every
    type pair, then ``sample()`` of the senders and of the receivers (R's Mersenne-Twister
    and rejection sampling, :mod:`secact.core.rsample`). Means and comparisons use R's
    arithmetic (``mean`` and ``colMeans`` in ``long double``), and BH runs on the p-values as
    R's table holds them (``as.character``: 15 significant digits), so the table is R's:
    ``padj`` and the order bit for bit, ``ratio`` and ``pvalue`` exact (R's text rounds
    them to 15 digits). ``rng="numpy"``: one ``numpy.random.Generator(seed)`` for all type
    pairs.

    ``expr`` (log-normalised expression of the proteins' genes) and ``act`` (activity, with
    negatives set to 0) are cells x proteins; ``labels`` are category codes (-1: none).
    ``chunk_elements`` bounds the products held at once (the result does not depend on it).
    """
    if rng not in RNG_KINDS:
        raise ValueError(f"rng must be one of {RNG_KINDS}, got {rng!r}.")
    e = np.asarray(expr, dtype=np.float64)
    a = np.asarray(act, dtype=np.float64)
    labels = np.asarray(labels)
    names = [str(c) for c in categories]
    order = _first_appearance(labels)
    gen = np.random.default_rng(seed) if rng == "numpy" else None
    m = e.shape[1]
    li, lj = labels[i], labels[j]
    rows: list[dict[str, Any]] = []
    for c1 in order:
        for c2 in order:
            if not names[c1] > names[c2]:
                continue
            cells1 = np.flatnonzero(labels == c1)
            cells2 = np.flatnonzero(labels == c2)
            sel = (li == c1) & (lj == c2)
            pi, pj = i[sel], j[sel]
            n_pairs = int(pi.size)
            if (
                np.unique(pi).size / cells1.size < min_fraction
                and np.unique(pj).size / cells2.size < min_fraction
            ):
                continue
            fwd_prod, rev_prod = e[pi] * a[pj], e[pj] * a[pi]
            fwd_mean, rev_mean = r_mean(fwd_prod), r_mean(rev_prod)
            fwd_pos, rev_pos = (fwd_prod > 0).sum(axis=0), (rev_prod > 0).sum(axis=0)
            fwd_ge = np.zeros(m, dtype=np.int64)
            rev_ge = np.zeros(m, dtype=np.int64)
            step = max(1, min(n_background, chunk_elements // max(1, n_pairs * m)))
            for _, s, r in _background_draws(
                cells1.size, cells2.size, n_pairs, n_background, rng, seed, gen, step
            ):
                snd, rcv = cells1[s], cells2[r]
                fwd_ge += _count_at_least(e[snd] * a[rcv], fwd_mean)
                rev_ge += _count_at_least(e[rcv] * a[snd], rev_mean)
            for k, protein in enumerate(proteins):
                for sender, receiver, ns, nr, mean, pos, ge in (
                    (c1, c2, cells1.size, cells2.size, fwd_mean, fwd_pos, fwd_ge),
                    (c2, c1, cells2.size, cells1.size, rev_mean, rev_pos, rev_ge),
                ):
                    ratio = pos[k] / n_pairs
                    if not ratio > ratio_cutoff:
                        continue
                    rows.append(
                        {
                            "sender": names[sender],
                            "secreted_protein": str(protein),
                            "receiver": names[receiver],
                            "sender_count": int(ns),
                            "receiver_count": int(nr),
                            "neighboring_pairs": n_pairs,
                            "communicating_pairs": int(pos[k]),
                            "ratio": float(ratio),
                            "strength": float(mean[k]),
                            "pvalue": (int(ge[k]) + 1) / (n_background + 1),
                        }
                    )
    # BH over the p-values as R's table holds them (as.character: 15 digits), so padj and the
    # order of ties are R's to the last bit
    padj = p_adjust_bh(np.array([r_as_character(r["pvalue"]) for r in rows], dtype=np.float64))
    for r, q in zip(rows, padj, strict=True):
        r["padj"] = float(q)
    kept = [r for r in rows if r["padj"] < padj_cutoff]
    kept.sort(key=lambda r: r["padj"])
    return kept


def nmf(v, k: int, *, seed: int = 0, n_runs: int = 1, max_iter: int = 2000):
    """Non-negative factorisation ``v ≈ w @ h`` (KL divergence, multiplicative updates).

    R's ``NMF::nmf`` default (Brunet's algorithm: KL divergence, multiplicative updates,
    random start) via scikit-learn; with ``n_runs > 1`` the best of several random starts
    (lowest divergence) is kept, like R's ``nrun``. ``v`` is features x samples (proteins x
    cells, as R's activity matrix).

    Returns
    -------
    ``w`` (features x k), ``h`` (k x samples).
    """
    try:
        from sklearn.decomposition import NMF
    except ImportError as err:  # pragma: no cover - depends on the environment
        msg = "signalling patterns need scikit-learn: pip install scikit-learn (or secact[spatial])."
        raise ImportError(msg) from err
    v = np.asarray(v, dtype=np.float64)
    if (v < 0).any():
        raise ValueError("NMF needs non-negative values; set negative activities to 0 first.")
    best = None
    seeds = np.random.SeedSequence(seed).generate_state(n_runs)
    for s in seeds:
        model = NMF(
            n_components=int(k),
            init="random",
            solver="mu",
            beta_loss="kullback-leibler",
            max_iter=max_iter,
            tol=1e-6,
            random_state=int(s),
        )
        w = model.fit_transform(v)
        err = float(model.reconstruction_err_)
        if best is None or err < best[0]:
            best = (err, w, model.components_)
    return best[1], best[2]


def silhouette_coef(h: np.ndarray) -> float:
    """Mean silhouette of the samples clustered by their largest coefficient.

    NMF's ``silhouette.coef``: samples (columns of ``h``) are assigned to the factor with the
    largest coefficient, distances are ``1 - Pearson correlation`` between samples' columns.
    NaN when fewer than two clusters are used.
    """
    h = np.asarray(h, dtype=np.float64)
    cl = h.argmax(axis=0)
    if np.unique(cl).size < 2 or np.unique(cl).size >= h.shape[1]:
        return float("nan")
    from sklearn.metrics import silhouette_score

    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(h.T)
    d = np.clip(1.0 - np.nan_to_num(c, nan=0.0), 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    return float(silhouette_score(d, cl, metric="precomputed"))


def choose_rank(ks: Sequence[int], silhouettes: Sequence[float]) -> int:
    """R's rank rule: the ``k`` just after the largest drop in silhouette between neighbours.

    ``v_diff = v[-last] - v[-first]``; ``k = ks[argmax(v_diff) + 1]`` (first maximum).
    """
    v = np.asarray(silhouettes, dtype=np.float64)
    if len(ks) < 2 or v.size != len(ks):
        raise ValueError("choose_rank needs at least two ranks and one silhouette per rank.")
    diff = v[:-1] - v[1:]
    if np.isnan(diff).all():
        return int(ks[0])
    return int(ks[int(np.nanargmax(diff)) + 1])


def velocity(
    coords,
    expr,
    act,
    radius: float,
    *,
    sigma: float | None = 100.0,
    mode: str = "receiving",
    senders=None,
    receivers=None,
) -> np.ndarray:
    """Per-cell signalling velocity of one secreted protein (R's ``SecAct.signaling.velocity.spotST``).

    Every directed neighbour pair ``(i, j)`` within ``radius`` (:func:`neighbor_pairs`) carries
    the flow ``w_ij = k(d_ij) * expr[i] * act[j]`` from sender ``i`` to receiver ``j``, with
    ``k`` the Gaussian kernel ``exp(-d^2 / (2 sigma^2))`` (``sigma=None``: 1) and
    ``u_ij = (x_j - x_i) / d_ij`` its unit direction. The vector of a cell is

    * ``mode="sending"``: ``(sum_j w_ij) * unit(sum_j w_ij u_ij)``, from cell ``i`` towards
      the neighbours its expression reaches;
    * ``mode="receiving"``: ``(sum_i w_ij) * unit(sum_i w_ij u_ij)``, the signal arriving at
      cell ``j`` from its expressing neighbours.

    Its length is the cell's total flow and its direction the flow-weighted mean direction
    (R averages the weighted unit vectors and rescales to unit length: the same direction).
    Cells without flow, or whose weighted directions cancel exactly, get ``(0, 0)`` (R:
    no arrow). ``senders`` / ``receivers`` (boolean masks) restrict which cells may send or
    receive (R's ``SecAct.signaling.velocity.scST`` sender and receiver types).

    Parameters
    ----------
    coords
        Cells x 2 coordinates.
    expr
        Expression of the protein's gene per cell (R: ``log2(counts / total * 1e5 + 1)``).
    act
        Activity per cell (R: z-scores with negatives set to 0).
    radius, sigma
        Neighbour radius and Gaussian width, in the coordinates' unit.
    mode
        ``"receiving"`` or ``"sending"``.
    senders, receivers
        Optional boolean masks (cells) of allowed senders and receivers.

    Returns
    -------
    Cells x 2 vectors (float64).
    """
    if mode not in ("receiving", "sending"):
        raise ValueError(f"mode must be 'receiving' or 'sending', got {mode!r}.")
    if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number or None, got {sigma!r}.")
    xy = np.asarray(coords, dtype=np.float64)[:, :2]
    n = xy.shape[0]
    e = np.asarray(expr, dtype=np.float64).ravel()
    a = np.asarray(act, dtype=np.float64).ravel()
    if e.shape != (n,) or a.shape != (n,):
        raise ValueError(f"expr and act need one value per cell ({n}), got {e.shape} and {a.shape}.")
    if not (np.isfinite(e).all() and np.isfinite(a).all()):
        raise ValueError("expr and act must be finite (NaN: a gene or activity is missing).")
    i, j, d = neighbor_pairs(xy, radius)
    k = np.ones(d.shape) if sigma is None else np.exp(-(d**2) / (2.0 * float(sigma) ** 2))
    w = k * e[i] * a[j]
    for mask, idx in ((senders, i), (receivers, j)):
        if mask is not None:
            m = np.asarray(mask, dtype=bool).ravel()
            if m.shape != (n,):
                raise ValueError(f"sender / receiver masks need one value per cell ({n}), got {m.shape}.")
            w = np.where(m[idx], w, 0.0)
    u = (xy[j] - xy[i]) / d[:, None]
    at = i if mode == "sending" else j
    total = np.bincount(at, weights=w, minlength=n)
    flow = np.column_stack([np.bincount(at, weights=w * u[:, c], minlength=n) for c in range(2)])
    norm = np.sqrt((flow**2).sum(axis=1))
    scale = np.divide(total, norm, out=np.zeros(n), where=(norm > 0) & (total > 0))
    return flow * scale[:, None]
