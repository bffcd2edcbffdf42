"""Out-of-core activity: a 100,000-cell x 20,000-gene CSR .h5ad, method="analytic", backed, out=.

Writes the file block by block (never whole in memory), then runs ``secact.tl.activity`` on it
opened with ``backed="r"`` in a fresh subprocess, and prints wall time, cells/s and the peak
resident memory of that process (ru_maxrss), side by side with the targets.

    python benchmarks/bench_backed.py [--cells 100000] [--genes 20000] [--nnz-per-cell 1500]
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


def write_h5ad(path: Path, n_cells: int, n_genes: int, nnz_per_cell: int, seed: int = 0) -> None:
    import anndata as ad
    import h5py
    import pandas as pd
    import scipy.sparse as sp
    from anndata.io import sparse_dataset, write_elem

    import secact

    sig_genes = list(secact.datasets.signature("SecAct").index)
    rng = np.random.default_rng(seed)
    genes = sig_genes + [f"GENE{i:05d}" for i in range(n_genes - len(sig_genes))]
    order = rng.permutation(n_genes)
    genes = [genes[i] for i in order]
    weights = rng.lognormal(0, 1.5, size=n_genes)
    weights /= weights.sum()
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        write_elem(f, "obs", pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)]))
        write_elem(f, "var", pd.DataFrame(index=genes))
        for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            write_elem(f, key, {})
        step = 5000
        for start in range(0, n_cells, step):
            m = min(step, n_cells - start)
            nnz = rng.poisson(nnz_per_cell, size=m).clip(1, n_genes)
            indptr = np.concatenate([[0], np.cumsum(nnz)])
            cols = rng.choice(n_genes, size=int(indptr[-1]), p=weights)
            data = (rng.geometric(0.5, size=cols.size)).astype(np.float32)
            block = sp.csr_matrix((data, cols, indptr), shape=(m, n_genes))
            block.sum_duplicates()
            if start == 0:
                write_elem(f, "X", block)
            else:
                sparse_dataset(f["X"]).append(block)
    check = ad.read_h5ad(path, backed="r")
    assert check.shape == (n_cells, n_genes)
    check.file.close()


CHILD = r"""
import json, resource, sys, time
import anndata as ad, secact
path, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
secact.datasets.signature("SecAct")
t0 = time.perf_counter()
adata = ad.read_h5ad(path, backed="r")
secact.tl.activity(adata, "SecAct", method="analytic", out=out, batch_size=batch, progress=False)
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "n_obs": adata.n_obs, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--nnz-per-cell", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="secact-bench-"))
    path = folder / "atlas.h5ad"
    if not path.exists():
        t0 = time.perf_counter()
        partial = folder / "atlas.partial.h5ad"
        write_h5ad(partial, args.cells, args.genes, args.nnz_per_cell)
        partial.rename(path)
        print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s")
    runs = []
    for i in range(args.repeats):
        out = folder / f"result_{i}.h5ad"
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(out), str(args.batch_size)],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ),
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        out.unlink()
    walls = sorted(r["wall"] for r in runs)
    wall = walls[len(walls) // 2]
    rss = max(r["maxrss_kb"] for r in runs) / 2**20
    n = runs[0]["n_obs"]
    print(
        f"cells x genes: {args.cells} x {args.genes}, ~{args.nnz_per_cell} counts stored per cell, CSR on disk"
    )
    print(f"{'':<28}{'measured':>14}{'target':>12}")
    print(f"{'wall time (median)':<28}{wall:>12.1f} s")
    print(f"{'cells/s':<28}{n / wall:>14,.0f}{'>= 3,000':>12}   ratio {n / wall / 3000:.2f}x")
    print(f"{'peak RSS':<28}{rss:>12.2f} GB{'<= 2 GB':>12}   ratio {rss / 2:.2f}x")
    print("runs:", ", ".join(f"{r['wall']:.1f} s" for r in runs))


if __name__ == "__main__":
    main()
