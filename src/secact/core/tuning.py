"""Which sparse permutation kernel to run on this machine, and where dense blocks start.

The kernels (:mod:`._sparse_kernels`) come in variants: ``G`` permutations per pass over a
cell's stored genes (4, 8, 16) and ``W`` proteins per tile (one or two 64-byte rows per gene).
All add the same terms in the same order, so they give the same numbers; their speed depends
on the machine. The *candidates* follow from the cache sizes (:mod:`.machine`): a width whose
tile (``n x W`` values) takes at most half the L2 cache, and always the one-row width. Then:

* ``settings.tune = True`` (default): the candidates are timed once on a synthetic block with
  the signature's shape (a few seconds plus their first compilation), and the choice is kept in
  ``<data_dir>/tuning/<machine>.json``, keyed by dtype and shape class (:func:`shape_class`:
  overlaps of 7,720 and 7,919 genes share one timing), for later runs;
* ``settings.tune = False``: no timing; the widest candidate with 8 permutations per pass and the
  default crossover :data:`DENSE_FROM`;
* ``settings.tune = "rerun"``: time again and replace what was kept.

The same timing gives the density from which the dense path (BLAS) is faster than the sparse
kernels, instead of a constant.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import machine
from ._sparse_kernels import PERMUTE

__all__ = [
    "CROSSOVER_RANGE",
    "DENSE_FROM",
    "Choice",
    "Variant",
    "candidates",
    "choose",
    "describe",
    "measure",
    "rule",
    "shape_class",
    "variants",
]

log = logging.getLogger("secact")

#: crossover (stored / all values) used when nothing was measured
DENSE_FROM = 0.35
#: the measurement: stored fraction, cells per thread, permutations (SecAct's default). It runs
#: on the signature's own shape: the per-cell work that every tile shares (the permuted
#: offsets) weighs as much as in real runs only with all the signature's tiles.
DENSITY, CELLS_PER_THREAD, PERMUTATIONS = 0.08, 8, 1000
#: rates this close to the fastest are taken as equal (timings on a busy machine vary more)
TIE = 0.05
#: the measured crossover is kept within this range (stored / all values)
CROSSOVER_RANGE = (0.02, 0.9)
VERSION = 3  # of the kept choices: a change of the kernels or of the timing bumps it

_lock = threading.Lock()
_chosen: dict[tuple, Choice] = {}


@dataclass(frozen=True)
class Variant:
    """One compiled kernel: ``perms`` permutations per pass, ``width`` proteins per tile."""

    dtype: str
    perms: int
    width: int

    @property
    def name(self) -> str:
        return f"{self.perms}x{self.width}"

    def tile_bytes(self, n_genes: int) -> int:
        return n_genes * self.width * np.dtype(self.dtype).itemsize

    @property
    def kernel(self):
        return PERMUTE[(self.dtype, self.perms, self.width)]


@dataclass
class Choice:
    """What runs: the variant, the dense/sparse crossover, and how they were found."""

    variant: Variant
    dense_from: float
    source: str  # "measured", "kept" or "rule"
    caches: str
    gflops: dict[str, float] = field(default_factory=dict)  # per candidate (effective)
    speedup: dict[str, float] = field(default_factory=dict)  # per candidate, over the rule's
    dense_gflops: float | None = None
    seconds: float | None = None  # of the timing
    compile_seconds: float | None = None  # first compilation (0 when Numba had them cached)


def variants(dtype: str) -> list[Variant]:
    """Every compiled variant for ``dtype``."""
    return [Variant(d, g, w) for d, g, w in PERMUTE if d == dtype]


def _line_width(dtype: str) -> int:
    return 64 // np.dtype(dtype).itemsize


def candidates(dtype: str, n_genes: int, caches: machine.CacheSizes | None = None) -> list[Variant]:
    """The variants worth timing on these caches: widths whose tile fits half the L2 cache (the
    rest is for the cell's offsets and the moments), and always the one-row width."""
    caches = caches or machine.cache_sizes()
    one_row = _line_width(dtype)
    out = [v for v in variants(dtype) if v.width == one_row or v.tile_bytes(n_genes) <= caches.l2 // 2]
    return sorted(out, key=lambda v: (v.width, v.perms))


def rule(dtype: str, n_genes: int, caches: machine.CacheSizes | None = None) -> Variant:
    """The choice without timing: the widest candidate, 8 permutations per pass."""
    cands = candidates(dtype, n_genes, caches)
    width = max(v.width for v in cands)
    return min((v for v in cands if v.width == width), key=lambda v: abs(v.perms - 8))


def _problem(n: int, p: int):
    from .permutations import permutation_table
    from .ridge import ridge_model

    rng = np.random.default_rng(0)
    model = ridge_model(rng.normal(size=(n, p)), lam=10.0)
    table = permutation_table(n, PERMUTATIONS, rng="numpy", seed=1)
    return model, table


def _block(n: int, m: int, density: float, seed: int = 2):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    k = max(1, round(density * n))
    cols = np.concatenate([np.sort(rng.choice(n, k, replace=False)) for _ in range(m)])
    data = np.log1p(rng.geometric(0.4, size=cols.size).astype(float))
    return sp.csr_matrix((data, cols, np.arange(m + 1) * k), shape=(m, n))


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(
    dtype: str, n_genes: int, n_proteins: int, cands: list[Variant] | None = None, repeats: int = 5
) -> Choice:
    """Time ``cands`` (default: :func:`candidates`) and the dense path on a synthetic block of
    the signature's shape; the fastest variant and the crossover density.

    The candidates are timed in turns (one run each, ``repeats`` rounds), so that a slow moment
    of a busy machine weighs on all of them alike, and each is compared with the cache-size
    rule's variant round by round: the median of its per-round speed-ups must exceed
    ``1 + TIE`` for it to replace the rule's choice (the fastest such one does)."""
    from .._settings import settings
    from .engine import Engine

    t_start = time.perf_counter()
    cands = cands or candidates(dtype, n_genes)
    model, table = _problem(n_genes, n_proteins)
    m = CELLS_PER_THREAD * settings.threads
    block = _block(n_genes, m, DENSITY)
    offset = np.asarray(block.mean(axis=0)).ravel()
    p, b = model.n_proteins, table.shape[0]
    engines = [
        Engine(model, table=table, offset=offset, dtype=dtype, layout="sparse", variant=v) for v in cands
    ]
    for eng in engines:
        eng.run(block[:2])  # compile, build the per-run constants
    t_compiled = time.perf_counter()
    times: list[list[float]] = [[] for _ in cands]
    for _ in range(repeats):
        for eng, ts in zip(engines, times, strict=True):
            t0 = time.perf_counter()
            eng.run(block)
            ts.append(time.perf_counter() - t0)
    gflops = {
        v.name: 2 * b * p * block.nnz / statistics.median(ts) / 1e9
        for v, ts in zip(cands, times, strict=True)
    }
    preferred = rule(dtype, n_genes)
    base = times[cands.index(preferred)]
    speedup = {
        v.name: statistics.median(r / t for r, t in zip(base, ts, strict=True))
        for v, ts in zip(cands, times, strict=True)
    }
    fastest = max(cands, key=lambda v: speedup[v.name])
    best = fastest if speedup[fastest.name] > 1 + TIE else preferred
    dense = Engine(model, table=table, offset=offset, dtype=dtype, layout="dense")
    few = block[: 2 * settings.threads]  # BLAS: the rate does not need many cells
    dense.run(few[:1])
    t_dense = _median_time(lambda: dense.run(few), 3) / few.shape[0] * m  # for all m cells
    t_sparse = 2 * b * p * block.nnz / gflops[best.name] / 1e9
    # the sparse time grows with the stored values, the dense one does not: they meet at
    crossover = float(np.clip(DENSITY * t_dense / t_sparse, *CROSSOVER_RANGE))
    return Choice(
        variant=best,
        dense_from=crossover,
        source="measured",
        caches=machine.cache_sizes().describe(),
        gflops=gflops,
        speedup=speedup,
        dense_gflops=2 * b * p * n_genes * m / t_dense / 1e9,
        seconds=time.perf_counter() - t_compiled,
        compile_seconds=t_compiled - t_start,
    )


def describe(choice: Choice, dtype: str, n_genes: int) -> list[str]:
    """Lines for people: the choice, how it was found and, when timed, every candidate's rate."""
    head = f"{dtype}: {choice.variant.name} (permutations x proteins per pass), "
    head += f"dense path from {choice.dense_from:.0%} stored; {choice.source}"
    if choice.seconds is not None and choice.source == "measured":
        head += f" in {choice.seconds:.1f} s (+{choice.compile_seconds:.1f} s compiling)"
    lines = [head]
    names = {v.name for v in candidates(dtype, n_genes)}
    for name, rate in sorted(choice.gflops.items(), key=lambda kv: -kv[1]):
        mark = " <- chosen" if name == choice.variant.name else ""
        ratio = f"  x{choice.speedup[name]:.2f} vs the rule's" if name in choice.speedup else ""
        note = "" if name in names else " (not a candidate now)"
        lines.append(f"  {name:>6}  {rate:7.1f} GFLOP/s{ratio}{note}{mark}")
    if choice.dense_gflops:
        lines.append(f"  dense path {choice.dense_gflops:7.1f} GFLOP/s")
    return lines


def _kept_path() -> Path:
    from .._settings import data_folder

    return data_folder() / "tuning" / f"{machine.fingerprint()}.json"


def shape_class(n: int) -> int:
    """``n`` rounded to the nearest power of ``2 ** (1 / 4)`` (steps of ~19%): signatures whose
    overlap with a profile differs by a few genes share one timing."""
    return max(2, round(2 ** (round(4 * math.log2(max(n, 2))) / 4)))


def _key(dtype: str, n_genes: int, n_proteins: int) -> str:
    return f"{dtype}/{n_genes}x{n_proteins}/v{VERSION}"


def _read_kept(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _from_kept(entry: dict, dtype: str) -> Choice | None:
    try:
        variant = Variant(dtype, int(entry["perms"]), int(entry["width"]))
        if (dtype, variant.perms, variant.width) not in PERMUTE:
            return None
        return Choice(
            variant=variant,
            dense_from=float(entry["dense_from"]),
            source="kept",
            caches=str(entry["caches"]),
            gflops={str(k): float(v) for k, v in entry["gflops"].items()},
            speedup={str(k): float(v) for k, v in entry.get("speedup", {}).items()},
            dense_gflops=entry.get("dense_gflops"),
            seconds=entry.get("seconds"),
            compile_seconds=entry.get("compile_seconds"),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _keep(path: Path, key: str, choice: Choice) -> None:
    """Add ``choice`` to the kept file (written whole to a temporary file, then renamed)."""
    entry = asdict(choice)
    entry.update(perms=choice.variant.perms, width=choice.variant.width)
    del entry["variant"], entry["source"]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_kept(path)
        data[key] = entry
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as err:  # a read-only cache costs a re-measurement next time, nothing else
        msg = (
            f"could not keep the kernel tuning in {os.fspath(path)!r} ({err.strerror or err}); it will be "
            "timed again in the next process. Set secact.settings.data_dir (or $SECACT_DATA_DIR) to a "
            "writable folder, or secact.settings.tune = False."
        )
        warnings.warn(msg, RuntimeWarning, stacklevel=2)


def choose(dtype: str, n_genes: int, n_proteins: int) -> Choice:
    """The kernel and crossover for this machine, dtype and signature shape (see the module)."""
    from .._settings import settings

    mode = settings.tune
    caches = machine.cache_sizes()
    if mode is False:
        return Choice(rule(dtype, n_genes, caches), DENSE_FROM, "rule", caches.describe())
    n_genes, n_proteins = shape_class(n_genes), shape_class(n_proteins)
    key = _key(dtype, n_genes, n_proteins)
    memo = (machine.fingerprint(), key)
    with _lock:
        if mode != "rerun" and memo in _chosen:
            return _chosen[memo]
        path = _kept_path()
        choice = None if mode == "rerun" else _from_kept(_read_kept(path).get(key, {}), dtype)
        if choice is None:
            log.info("timing the sparse kernels for this machine (%s, about %s genes); once.", dtype, n_genes)
            choice = measure(dtype, n_genes, n_proteins)
            _keep(path, key, choice)
            log.info(
                "kernel %s chosen in %.1f s (+%.1f s compiling); dense from %.0f%% stored.",
                choice.variant.name,
                choice.seconds,
                choice.compile_seconds,
                100 * choice.dense_from,
            )
        _chosen[memo] = choice
        if mode == "rerun":
            settings.tune = True  # once: later runs use what was just measured
        return choice
