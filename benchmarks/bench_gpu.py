"""The GPU backend on a device: parity with the CPU, throughput, memory, and the GEMM rate.

One command on a machine with CuPy and a CUDA device prints, side by side in one run:

* the device, CuPy and CUDA versions;
* CuPy's fp64 GEMM rate (square 8192 products, and the engine's own shape
  ``(m x n) @ (n x k*p)``), median of CUDA-event timings;
* parity on ``--parity-cells`` cells of 20,000-gene sparse counts (SecAct, 1,000 permutations,
  and analytic): ``tl.activity(backend="gpu")`` against ``backend="cpu"``, max |delta| of beta,
  se, zscore, pvalue and the share of identical p-values;
* the engine alone on log-normalised sparse blocks: cells/s for SecAct with 1,000 permutations
  and analytic, the ``(rows, k)`` chosen from the memory budget, effective TFLOP/s
  (``2*B*m*n*p``) and its fraction of the engine-shape GEMM rate, the memory pool's peak bytes
  against the budget;
* ``tl.activity(backend="gpu")`` end to end (both passes over the data, normalisation on the
  host, upload, results back) in cells/s.

Targets (issue 18): >= 4,000 cells/s for SecAct permutations on sparse counts, >= 60% of the
measured fp64 GEMM rate, >= 100,000 cells/s analytic, device memory within the budget.

    python benchmarks/bench_gpu.py                       # on a device (needs the SecAct signature)
    python benchmarks/bench_gpu.py --stand-in --cells 300 --parity-cells 200 --permutations 50
        # a dry run of this script on the CPU (array-API engine on NumPy; no device figures)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

import secact
from secact.core import gpu
from secact.core.params import InferenceParams
from secact.core.plan import make_plan
from secact.core.xp_engine import ArrayDevice, XpEngine, choose_sizes

N_GENES = 20_000
DENSITY = 0.08


def counts(n_cells: int, n_genes: int, density: float, seed: int = 0) -> sp.csr_matrix:
    """Cells with exactly ``density * n_genes`` stored genes each (geometric counts)."""
    rng = np.random.default_rng(seed)
    k = round(density * n_genes)
    cols = np.concatenate([np.sort(rng.choice(n_genes, k, replace=False)) for _ in range(n_cells)])
    data = rng.geometric(0.4, size=cols.size).astype(np.float32)
    return sp.csr_matrix((data, cols, np.arange(n_cells + 1) * k), shape=(n_cells, n_genes))


def genes(n_genes: int) -> list[str]:
    sig = list(secact.datasets.signature("SecAct").index)
    names = sig + [f"GENE{i:05d}" for i in range(n_genes - len(sig))]
    return [names[i] for i in np.random.default_rng(0).permutation(n_genes)]


class Device:
    """CuPy on a device, or the NumPy stand-in for a dry run."""

    def __init__(self, stand_in: bool):
        self.stand_in = stand_in
        if stand_in:
            self.cp = None
            self.name = "CPU stand-in (array-API engine on NumPy): NO device figures"
        else:
            self.cp = gpu.require()
            props = self.cp.cuda.runtime.getDeviceProperties(self.cp.cuda.Device().id)
            name = props["name"]
            self.name = name.decode() if isinstance(name, bytes) else str(name)

    def engine_device(self):
        return ArrayDevice() if self.stand_in else gpu.CupyDevice()

    def sync(self):
        if self.cp is not None:
            self.cp.cuda.Device().synchronize()

    def timed(self, fn, repeats: int) -> float:
        times = []
        for _ in range(repeats):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def gemm_rates(self, m: int, n: int, p: int, k: int) -> tuple[float, float]:
        """TFLOP/s of a square fp64 product and of the engine's shape ``(m x n) @ (n x k*p)``."""
        xp = np if self.cp is None else self.cp
        size = 8192 if self.cp is not None else 2000
        a = xp.asarray(np.random.default_rng(0).random((size, size)))
        square = self.timed(lambda: a @ a, 5)
        z = xp.asarray(np.random.default_rng(1).random((m, n)))
        t = xp.asarray(np.random.default_rng(2).random((n, k * p)))
        shaped = self.timed(lambda: xp.matmul(z, t), 5)
        return 2 * size**3 / square / 1e12, 2 * k * m * n * p / shaped / 1e12

    def pool_reset(self):
        if self.cp is not None:
            self.cp.get_default_memory_pool().free_all_blocks()

    def pool_bytes(self) -> int | None:
        return None if self.cp is None else int(self.cp.get_default_memory_pool().total_bytes())


def use_stand_in():
    """``backend="gpu"`` runs the array-API engine on NumPy (dry run without a device)."""
    gpu.require = lambda: None
    gpu.engine = lambda model, **kw: XpEngine(model, device=ArrayDevice(), **kw)


def parity(n_cells: int, n_perm: int, names: list[str]) -> None:
    adata = ad.AnnData(counts(n_cells, N_GENES, DENSITY, seed=5), var=pd.DataFrame(index=names))
    adata.obs_names = [f"c{i}" for i in range(n_cells)]
    for method in ("permutation", "analytic"):
        kw = dict(method=method, n_permutations=n_perm, copy=True, progress=False)
        t0 = time.perf_counter()
        cpu = secact.tl.activity(adata, "SecAct", backend="cpu", **kw)
        t_cpu = time.perf_counter() - t0
        t0 = time.perf_counter()
        dev = secact.tl.activity(adata, "SecAct", backend="gpu", **kw)
        t_gpu = time.perf_counter() - t0
        line = []
        for stat in ("beta", "se", "zscore", "pvalue"):
            a = dev.obsm[f"secact_{stat}"].to_numpy()
            b = cpu.obsm[f"secact_{stat}"].to_numpy()
            line.append(f"{stat} {np.nanmax(np.abs(a - b)):.1e}")
        if method == "permutation":  # counts: identical; analytic p-values are continuous in z
            same = np.mean(dev.obsm["secact_pvalue"].to_numpy() == cpu.obsm["secact_pvalue"].to_numpy())
            line.append(f"identical p-values {same:.4%}")
        print(f"  {method:11s} max|delta| {', '.join(line)} (cpu {t_cpu:.1f} s, gpu {t_gpu:.1f} s)")


def engine_rates(dev: Device, n_cells: int, n_perm: int, names: list[str], batch: int, gemm: float) -> None:
    sig = secact.datasets.signature("SecAct")
    x = counts(n_cells, N_GENES, DENSITY, seed=7).astype(np.float64)
    lib = np.asarray(x.sum(axis=1)).ravel()
    x = sp.diags(1e4 / lib) @ x
    x.data = np.log2(x.data + 1)
    for method in ("permutation", "analytic"):
        plan = make_plan(sig, names, InferenceParams(method, n_perm), signature_name="SecAct", backend="cpu")
        cols = plan.gene_index
        block_all = x[:, cols].tocsr()
        offset = np.asarray(block_all.mean(axis=0)).ravel()
        eng = XpEngine(plan.model, method=method, table=plan.table, offset=offset, device=dev.engine_device())
        n, p = plan.model.n_genes, plan.model.n_proteins
        eng.run(block_all[:8])  # constants on the device, kernels warmed up
        dev.pool_reset()
        eng.run(block_all[:8])

        def run_all(eng=eng, block_all=block_all):
            for a in range(0, n_cells, batch):
                eng.run(block_all[a : a + batch])

        dt = dev.timed(run_all, 1 if method == "permutation" else 3)
        rate = n_cells / dt
        budget = eng.device.budget()
        peak = dev.pool_bytes()
        mem = "n/a (stand-in)" if peak is None else f"{peak / 2**20:,.0f} MiB ({peak / budget:.0%} of budget)"
        text = f"  {method:11s} {rate:>10,.0f} cells/s  (rows, k) = {eng.last_sizes}, budget {budget / 2**20:,.0f} MiB, pool peak {mem}"
        if method == "permutation":
            tflops = 2 * n_perm * n_cells * n * p / dt / 1e12
            text += f"; {tflops:.2f} TFLOP/s = {tflops / gemm:.0%} of the engine-shape GEMM rate"
        print(text + f"  [n = {n} overlap genes, p = {p} columns, {n_cells:,} cells, batch {batch}]")


def end_to_end(n_cells: int, n_perm: int, names: list[str], method: str) -> None:
    adata = ad.AnnData(counts(n_cells, N_GENES, DENSITY, seed=9), var=pd.DataFrame(index=names))
    adata.obs_names = [f"c{i}" for i in range(n_cells)]
    kw = dict(method=method, n_permutations=n_perm, progress=False, stats=["zscore"])
    t0 = time.perf_counter()
    secact.tl.activity(adata, "SecAct", backend="gpu", **kw)
    dt = time.perf_counter() - t0
    print(f"  {method:11s} {n_cells / dt:>10,.0f} cells/s end to end ({n_cells:,} cells in {dt:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20_000, help="cells for the permutation rate")
    parser.add_argument("--analytic-cells", type=int, default=100_000, help="cells for the analytic rate")
    parser.add_argument("--parity-cells", type=int, default=2_000)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=2048, help="cells per block (settings.batch_size)")
    parser.add_argument("--stand-in", action="store_true", help="dry run on the CPU (no device figures)")
    args = parser.parse_args()

    dev = Device(args.stand_in)
    if args.stand_in:
        use_stand_in()
    secact.settings.batch_size = args.batch
    print(f"device: {dev.name}")
    if dev.cp is not None:
        print(f"CuPy {dev.cp.__version__}, CUDA runtime {dev.cp.cuda.runtime.runtimeGetVersion()}")
    names = genes(N_GENES)
    sig = secact.datasets.signature("SecAct")
    plan = make_plan(sig, names, InferenceParams("permutation", args.permutations), signature_name="SecAct")
    n, p = plan.model.n_genes, plan.model.n_proteins
    rows, k = choose_sizes(args.batch, n, p, args.permutations, dev.engine_device().budget())
    square, shaped = dev.gemm_rates(rows, n, p, k)
    print(
        f"fp64 GEMM: {square:.2f} TFLOP/s (square), {shaped:.2f} TFLOP/s (engine shape {rows} x {n} @ {n} x {k}*{p})"
    )
    print(f"parity, {args.parity_cells:,} cells x {N_GENES:,} genes ({DENSITY:.0%} stored), SecAct:")
    parity(args.parity_cells, args.permutations, names)
    print("engine alone (log-normalised sparse blocks, upload, densify, results back):")
    engine_rates(dev, args.cells, args.permutations, names, args.batch, shaped)
    print("tl.activity(backend='gpu') end to end (zscore kept):")
    end_to_end(args.cells, args.permutations, names, "permutation")
    end_to_end(args.analytic_cells, args.permutations, names, "analytic")
    print("targets: >= 4,000 cells/s permutations, >= 60% of the GEMM rate, >= 100,000 cells/s analytic")
    if args.stand_in:
        print("(stand-in run: these figures are NumPy on this CPU, not a device)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
