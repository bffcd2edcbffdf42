"""The scale curve: ``tl.activity`` on 10^4 .. 10^6 cells x 20,000 genes read from disk.

Data are generated on the fly (sparse counts, ~8% of genes stored per cell, CSR) and written
block by block to an ``.h5ad`` file and, with ``--zarr``, to a zarr store (nothing is
committed). Each run is a fresh subprocess: ``secact.tl.activity(path, "SecAct",
method="analytic", out=sidecar)`` with the default statistics (float64) and with
``stats=["zscore"], dtype="float32"``; it prints wall time, cells/s, peak RSS (ru_maxrss of
the child) and bytes written, then the growth of time from the smallest to the largest size
per 10x cells (linear scaling = 10x). ``--permutation N`` also times SecAct's 1,000
permutations on the first N cells (to extrapolate; the table says so).

    python benchmarks/bench_scale.py [--sizes 10000,100000,300000,1000000] [--zarr] [--dir DIR]
        [--default-up-to 300000] [--permutation 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_GENES = 20_000
NNZ_PER_CELL = 1_650  # ~8% of 20,000 genes after duplicates are summed


def write_store(path: Path, n_cells: int, seed: int = 0) -> None:
    """An AnnData store (``.h5ad`` or ``.zarr`` by suffix) written block by block."""
    import h5py
    import pandas as pd
    import scipy.sparse as sp
    from anndata.io import sparse_dataset, write_elem

    import secact

    sig_genes = list(secact.datasets.signature("SecAct").index)
    rng = np.random.default_rng(seed)
    genes = sig_genes + [f"GENE{i:05d}" for i in range(N_GENES - len(sig_genes))]
    genes = [genes[i] for i in rng.permutation(N_GENES)]
    weights = rng.lognormal(0, 1.5, size=N_GENES)
    cdf = np.cumsum(weights / weights.sum())
    if path.suffix == ".zarr":
        import zarr

        f = zarr.open_group(path, mode="w")
    else:
        f = h5py.File(path, "w")
    try:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        write_elem(f, "obs", pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)]))
        write_elem(f, "var", pd.DataFrame(index=genes))
        for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            write_elem(f, key, {})
        step = 10_000
        for start in range(0, n_cells, step):
            m = min(step, n_cells - start)
            nnz = rng.poisson(NNZ_PER_CELL, size=m).clip(1, N_GENES)
            indptr = np.concatenate([[0], np.cumsum(nnz)])
            cols = np.searchsorted(cdf, rng.random(int(indptr[-1]))).clip(0, N_GENES - 1)
            data = rng.geometric(0.5, size=cols.size).astype(np.float32)
            block = sp.csr_matrix((data, cols.astype(np.int32), indptr), shape=(m, N_GENES))
            block.sum_duplicates()
            if start == 0:
                write_elem(f, "X", block)
            else:
                sparse_dataset(f["X"]).append(block)
    finally:
        if hasattr(f, "close"):
            f.close()


CHILD = r"""
import json, resource, sys, time, warnings
import secact
warnings.simplefilter("ignore")
path, out, mode, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
secact.datasets.signature("SecAct")
kw = {"method": "analytic"}
if mode == "zscore32":
    kw.update(stats=["zscore"], dtype="float32")
elif mode == "permutation":
    import anndata as ad
    kw = {"method": "permutation", "stats": ["zscore"], "dtype": "float32"}
t0 = time.perf_counter()
if mode == "permutation":
    adata = ad.read_h5ad(path, backed="r")[:limit]
    secact.tl.activity(adata, "SecAct", out=out, progress=False, **kw)
    n = limit
else:
    secact.tl.activity(path, "SecAct", out=out, progress=False, **kw)
    n = None
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "n": n, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run(path: Path, out: Path, mode: str, limit: int = 0) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(out), mode, str(limit)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    found["written"] = _size(out)
    _remove(out)
    return found


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,300000,1000000")
    parser.add_argument("--zarr", action="store_true", help="also a zarr store of the same data")
    parser.add_argument(
        "--default-up-to", type=int, default=300_000, help="largest size run with all four statistics"
    )
    parser.add_argument(
        "--permutation", type=int, default=2000, help="cells timed with 1,000 permutations (0: none)"
    )
    parser.add_argument("--dir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated stores")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = Path(args.dir or tempfile.mkdtemp(prefix="secact-scale-"))
    kinds = [".h5ad"] + ([".zarr"] if args.zarr else [])
    rows = []
    print(
        f"{'cells':>10} {'store':>6} {'statistics':>18} {'wall s':>8} {'cells/s':>9} {'peak RSS':>9} {'written':>9}"
    )
    for n in sizes:
        for kind in kinds:
            path = folder / f"atlas_{n}{kind}"
            if not path.exists():
                t0 = time.perf_counter()
                write_store(path, n)
                print(
                    f"# wrote {path.name}: {_size(path) / 2**30:.2f} GiB in {time.perf_counter() - t0:.0f} s",
                    flush=True,
                )
            modes = ["zscore32"] + (["default"] if n <= args.default_up_to else [])
            for mode in modes:
                got = run(path, folder / f"side_{n}_{kind[1:]}.h5ad", mode)
                label = "4 stats, float64" if mode == "default" else "zscore, float32"
                rows.append((n, kind, label, got["wall"]))
                print(
                    f"{n:>10,} {kind[1:]:>6} {label:>18} {got['wall']:>8.1f} {n / got['wall']:>9,.0f} "
                    f"{got['maxrss_kb'] / 2**20:>7.2f} GB {got['written'] / 2**30:>7.2f} GB",
                    flush=True,
                )
            if not args.keep and n != sizes[0]:
                _remove(path)
    for kind in kinds:
        pts = sorted((n, w) for n, k, label, w in rows if k == kind and label == "zscore, float32")
        if len(pts) >= 2:
            n1, w1 = pts[-1]
            decade = [pt for pt in pts if pt[0] * 10 == n1]  # 10^5 -> 10^6 when both were run
            n0, w0 = decade[0] if decade else pts[0]
            per10 = (w1 / w0) ** (np.log(10) / np.log(n1 / n0))
            print(
                f"# {kind[1:]}: time {n0:,} -> {n1:,} cells grew {w1 / w0:.2f}x for {n1 / n0:.0f}x cells ({per10:.2f}x per 10x; linear = 10x)"
            )
    if args.permutation:
        path = folder / f"atlas_{sizes[0]}.h5ad"
        got = run(path, folder / "side_perm.h5ad", "permutation", args.permutation)
        per = got["wall"] / args.permutation
        print(
            f"# permutation (1,000, zscore float32): {args.permutation:,} cells in {got['wall']:.1f} s = "
            f"{per * 1000:.1f} s per 1,000 cells; extrapolated 10^6 cells: {per * 1e6 / 3600:.1f} h (not measured)"
        )
    if not args.keep:
        _remove(folder / f"atlas_{sizes[0]}.h5ad")
        _remove(folder / f"atlas_{sizes[0]}.zarr")


if __name__ == "__main__":
    main()
