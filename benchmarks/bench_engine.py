"""The CPU engine against the machine's matrix-multiply rate, and against SecActPy 0.3.1.

Prints, side by side in one run:

* this machine's data caches (as the kernels read them) and the kernel variant chosen for it
  (timed once per machine, see ``secact.core.tuning``), with the measured dense/sparse crossover;
* every sparse kernel variant's effective GFLOP/s on the SecAct signature's shape and its
  fraction of dgemm, float64 and float32 (``*``: a candidate on these caches; ``<-``: chosen);
* with ``--rows-within``: the chosen float64 kernel again, with every permuted row taken from
  the first R genes of its tile (numbers meaningless, work identical), for R from an L1-sized
  tile to the whole signature: how much of the gap to dgemm is where the rows come from;
* with ``--caches 32K/512K --caches 48K/2M``: the machines those caches describe, simulated
  (candidates from the forced sizes, timed here), the variant each would choose and its fraction;
* the first-use tuning time (a fresh process: empty Numba cache, nothing kept);
* numpy's dgemm GFLOP/s (4000 x 4000 products, median);
* the dense permutation path's GFLOP/s (2·B·n·p·m) and its ratio to dgemm;
* the sparse permutation kernels' effective GFLOP/s (2·B·p·nnz: stored values only) and ratio;
* ``secact.tl.activity`` (SecAct, 1000 permutations, per cell) on 20,000-gene counts at ~8%
  density: seconds per 1,000 cells in float64 and float32;
* the same job in SecActPy 0.3.1 (``secact_activity_inference_scrnaseq(...,
  is_single_cell_level=True)``), run by the Python that ``$SECACTPY_PYTHON`` names (a separate
  venv: SecActPy pins numpy < 2), and the ratio.

``--crossover`` also times both permutation paths over a range of densities (where the
engine's ``DENSE_FROM`` comes from).

    SECACTPY_PYTHON=/path/to/venv/bin/python python benchmarks/bench_engine.py [--cells 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import secact
from secact.core import machine, tuning
from secact.core.engine import Engine
from secact.core.params import InferenceParams
from secact.core.plan import make_plan

FIRST_USE = r"""
import sys, time
import secact
from secact.core import tuning
secact.settings.tune = "rerun"
secact.settings.data_dir = sys.argv[4]
t0 = time.perf_counter()
choice = tuning.choose(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
print(time.perf_counter() - t0, choice.variant.name, choice.seconds, choice.compile_seconds)
"""

SECACTPY = r"""
import sys, time, warnings
import anndata as ad
warnings.filterwarnings("ignore")
from secactpy import secact_activity_inference_scrnaseq
adata = ad.read_h5ad(sys.argv[1])
t0 = time.perf_counter()
res = secact_activity_inference_scrnaseq(adata, "cell_type", is_single_cell_level=True, n_rand=1000)
dt = time.perf_counter() - t0
print(dt, res["zscore"].shape)
"""


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def dgemm_gflops(repeats: int) -> float:
    a = np.random.default_rng(0).random((4000, 4000))
    a @ a
    return 2 * 4000**3 / median_time(lambda: a @ a, repeats) / 1e9


def counts(n_cells: int, n_genes: int, density: float, seed: int = 0) -> sp.csr_matrix:
    """Cells with exactly ``density * n_genes`` stored genes each (geometric counts)."""
    rng = np.random.default_rng(seed)
    k = round(density * n_genes)
    cols = np.concatenate([np.sort(rng.choice(n_genes, k, replace=False)) for _ in range(n_cells)])
    data = rng.geometric(0.4, size=cols.size).astype(np.float32)
    indptr = np.arange(n_cells + 1) * k
    return sp.csr_matrix((data, cols, indptr), shape=(n_cells, n_genes))


def genes(n_genes: int, seed: int = 0) -> list[str]:
    sig = list(secact.datasets.signature("SecAct").index)
    names = sig + [f"GENE{i:05d}" for i in range(n_genes - len(sig))]
    order = np.random.default_rng(seed).permutation(n_genes)
    return [names[i] for i in order]


def log_block(plan, density: float, m: int):
    block = counts(m, plan.model.n_genes, density, seed=1).astype(np.float64)
    block.data = np.log2(block.data * 1e4 / 2000 + 1)
    return block, np.asarray(block.mean(axis=0)).ravel()


def engine_rates(plan, density: float, m: int, repeats: int) -> dict[str, tuple[float, float]]:
    """(seconds per cell, GFLOP/s) of both permutation paths on ``m`` log-normalised cells."""
    block, offset = log_block(plan, density, m)
    n, p, b = plan.model.n_genes, plan.model.n_proteins, plan.table.shape[0]
    out = {}
    for layout in ("dense", "sparse"):
        eng = Engine(plan.model, table=plan.table, offset=offset, layout=layout)
        eng.run(block[:2])  # compile and build the per-run constants
        dt = median_time(lambda eng=eng: eng.run(block), repeats)
        flops = 2 * b * p * (n * m if layout == "dense" else block.nnz)
        out[layout] = (dt / m, flops / dt / 1e9)
    return out


def variant_rates(plan, density: float, m: int, repeats: int, dtype: str) -> dict[str, float]:
    """Effective GFLOP/s (2·B·p·nnz) of every sparse kernel variant for ``dtype``."""
    block, offset = log_block(plan, density, m)
    p, b = plan.model.n_proteins, plan.table.shape[0]
    out = {}
    for v in tuning.variants(dtype):
        eng = Engine(plan.model, table=plan.table, offset=offset, layout="sparse", dtype=dtype, variant=v)
        eng.run(block[:2])
        out[v.name] = 2 * b * p * block.nnz / median_time(lambda eng=eng: eng.run(block), repeats) / 1e9
    return out


def print_variants(plan, args, gemm: float) -> dict[str, dict[str, float]]:
    n = plan.model.n_genes
    caches = machine.cache_sizes()
    print(f"caches: {caches.describe()}")
    rates = {}
    for dtype in ("float64", "float32"):
        choice = tuning.choose(dtype, n, plan.model.n_proteins)
        cands = {v.name for v in tuning.candidates(dtype, n)}
        print(
            f"{dtype}: chosen {choice.variant.name} ({choice.source}; dense from {choice.dense_from:.0%} stored)"
        )
        rates[dtype] = variant_rates(plan, args.density, args.engine_cells, args.repeats, dtype)
        for name, gf in rates[dtype].items():
            mark = ("*" if name in cands else " ") + (" <- chosen" if name == choice.variant.name else "")
            print(f"  {name:>6} perms x proteins  {gf:7.1f} GFLOP/s  {gf / gemm:5.0%} of dgemm {mark}")
    return rates


def simulate(plan, args, gemm: float, rates: dict[str, dict[str, float]]) -> None:
    """Force other cache sizes: their candidates, the variant timed best among them, its rate."""
    print("simulated machines (cache sizes forced; candidates follow them, timed on this CPU):")
    n, p = plan.model.n_genes, plan.model.n_proteins
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.caches:
            with secact.settings.override(cache_sizes=spec, data_dir=tmp, tune="rerun"):
                caches = machine.cache_sizes()
                for dtype in ("float64", "float32"):
                    choice = tuning.choose(dtype, n, p)
                    gf = rates[dtype][choice.variant.name]
                    cands = " ".join(v.name for v in tuning.candidates(dtype, n))
                    print(
                        f"  L1d {caches.l1d >> 10} KiB / L2 {caches.l2 >> 10} KiB  {dtype}: candidates {cands}; "
                        f"chosen {choice.variant.name}: {gf:.1f} GFLOP/s = {gf / gemm:.0%} of dgemm"
                    )


def rows_within(plan, args, gemm: float) -> None:
    """The chosen float64 kernel with the permuted rows confined to the first R genes of a tile.

    The same kernel does the same work (same cells, passes and folds); only the rows it reads
    come from a smaller part of the tile, so the rate shows what fetching rows from L1, from L2
    or from the whole tile costs on this machine (the results are meaningless and discarded)."""
    block, offset = log_block(plan, args.density, args.engine_cells)
    n, p, b = plan.model.n_genes, plan.model.n_proteins, plan.table.shape[0]
    variant = tuning.choose("float64", n, p).variant
    print(f"float64 {variant.name}, permuted rows confined to the first R genes of each tile:")
    eng = Engine(plan.model, table=plan.table, offset=offset, layout="sparse", variant=variant)
    tiles, inv, trp, c = eng._sparse_constants()
    eng.run(block[:2])  # compile
    for rows in sorted({256, 1024, 4096, n}):
        eng._sparse = (tiles, inv % np.int32(min(rows, n)), trp, c)
        gf = 2 * b * p * block.nnz / median_time(lambda: eng.run(block), args.repeats) / 1e9
        kib = min(rows, n) * variant.width * 8 / 1024
        print(
            f"  R = {min(rows, n):5d} genes ({kib:5.0f} KiB of tile)  {gf:7.1f} GFLOP/s  {gf / gemm:5.0%} of dgemm"
        )


def first_use(plan) -> None:
    """Tuning in a fresh process: nothing kept, nothing compiled (empty Numba cache)."""
    n, p = plan.model.n_genes, plan.model.n_proteins
    for dtype in ("float64", "float32"):
        with tempfile.TemporaryDirectory() as numba_cache, tempfile.TemporaryDirectory() as data:
            env = dict(os.environ, NUMBA_CACHE_DIR=numba_cache)
            cmd = [sys.executable, "-c", FIRST_USE, dtype, str(n), str(p), data]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            print("first-use tuning failed:", proc.stderr[-1500:])
            continue
        wall, name, timing, compiling = proc.stdout.split()
        print(
            f"first use, {dtype}: {float(wall):.1f} s in all: compiling the candidates "
            f"{float(compiling):.1f} s, timing them {float(timing):.1f} s; chose {name}"
        )


def write_h5ad(path: Path, n_cells: int, n_genes: int, density: float) -> None:
    import anndata as ad
    import pandas as pd

    x = counts(n_cells, n_genes, density)
    obs = pd.DataFrame({"cell_type": pd.Categorical(np.arange(n_cells) % 4).rename_categories(list("ABCD"))})
    obs.index = [f"cell{i}" for i in range(n_cells)]
    ad.AnnData(x, obs=obs, var=pd.DataFrame(index=genes(n_genes))).write_h5ad(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=1000, help="cells for the tl.activity timing")
    parser.add_argument("--secactpy-cells", type=int, default=200, help="cells for SecActPy (slow)")
    parser.add_argument("--engine-cells", type=int, default=64)
    parser.add_argument("--density", type=float, default=0.08)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crossover", action="store_true")
    parser.add_argument(
        "--caches", action="append", default=[], help="simulate a machine: 'L1d/L2', e.g. 32K/512K"
    )
    parser.add_argument("--first-use", action="store_true", help="time the tuning in a fresh process")
    parser.add_argument(
        "--rows-within", action="store_true", help="float64 rate with rows confined to part of a tile"
    )
    parser.add_argument("--skip-activity", action="store_true", help="only the kernels, not tl.activity")
    args = parser.parse_args()
    import anndata as ad

    print(f"threads: {secact.settings.threads} (numba layer {secact.core._numba._layer()})")
    gemm = dgemm_gflops(args.repeats)
    print(f"numpy dgemm                       {gemm:7.1f} GFLOP/s")
    sig = secact.datasets.signature("SecAct")
    plan = make_plan(sig, list(sig.index), InferenceParams(), signature_name="SecAct")
    variant_table = print_variants(plan, args, gemm)
    if args.caches:
        simulate(plan, args, gemm, variant_table)
    if args.rows_within:
        rows_within(plan, args, gemm)
    if args.first_use:
        first_use(plan)
    rates = engine_rates(plan, args.density, args.engine_cells, args.repeats)
    dense_gf = rates["dense"][1]
    sparse_gf = rates["sparse"][1]
    print(
        f"dense permutation path            {dense_gf:7.1f} GFLOP/s  {dense_gf / gemm:5.0%} of dgemm (target >= 70%)"
    )
    print(
        f"sparse permutation kernels        {sparse_gf:7.1f} GFLOP/s  {sparse_gf / gemm:5.0%} of dgemm (target >= 40%; "
        f"effective, {args.density:.0%} of {plan.model.n_genes} overlap genes stored)"
    )

    if args.skip_activity:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cells.h5ad"
        n_sp = args.secactpy_cells
        write_h5ad(path, max(args.cells, n_sp), 20000, args.density)
        adata = ad.read_h5ad(path)
        print(
            f"data: {adata.n_obs} cells x {adata.n_vars} genes, density {adata.X.nnz / np.prod(adata.shape):.3f}"
        )
        ours = {}
        for dtype in ("float64", "float32"):
            sub = adata[: args.cells].copy()
            secact.tl.activity(sub[:8].copy(), dtype=dtype, progress=False)  # compile
            dt = median_time(
                lambda sub=sub, dtype=dtype: secact.tl.activity(sub, dtype=dtype, progress=False), 1
            )
            ours[dtype] = dt / args.cells * 1000
            print(
                f"secact tl.activity {dtype}          {ours[dtype]:7.1f} s per 1,000 cells (target <= 50 s)"
            )
        python = os.environ.get("SECACTPY_PYTHON")
        if python:
            small = Path(tmp) / "secactpy.h5ad"
            adata[:n_sp].copy().write_h5ad(small)
            proc = subprocess.run([python, "-c", SECACTPY, str(small)], capture_output=True, text=True)
            if proc.returncode:
                print("SecActPy failed:", proc.stderr[-2000:])
            else:
                dt = float(proc.stdout.split()[0])
                theirs = dt / n_sp * 1000
                print(f"SecActPy 0.3.1 ({n_sp} cells)          {theirs:7.1f} s per 1,000 cells")
                print(f"ratio SecActPy / secact float64   {theirs / ours['float64']:7.1f}x (target >= 10x)")
                print(f"ratio SecActPy / secact float32   {theirs / ours['float32']:7.1f}x")
        else:
            print("SecActPy: set SECACTPY_PYTHON to a venv's python with secactpy==0.3.1 to compare")

    if args.crossover:
        print("density   dense s/cell   sparse s/cell")
        for density in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8):
            r = engine_rates(plan, density, 32, 1)
            print(f"{density:7.2f}   {r['dense'][0]:12.4f}   {r['sparse'][0]:13.4f}")


if __name__ == "__main__":
    sys.exit(main())
