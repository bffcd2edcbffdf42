"""Sidecar runs on a dask.distributed cluster: 1 vs 2 single-threaded workers, side by side.

A CSR .h5ad (default 20,000 cells x 20,000 genes, ~1,500 counts per cell) is opened lazily
(``anndata.experimental.read_elem_lazy``, chunks of ``--batch-size`` cells), and
``secact.tl.activity(..., method="analytic", out=...)`` streams the results of every block to
a sidecar while the cluster computes further blocks. Each configuration runs in a fresh
subprocess with its own ``LocalCluster(n_workers=k, threads_per_worker=1)``; one warm-up run on
that cluster (workers import secact and load the signature) precedes the timed runs.

    python benchmarks/bench_dask.py [--cells 20000] [--repeats 3] [--workers 1 2]
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

sys.path.insert(0, str(Path(__file__).parent))
from bench_backed import write_h5ad

CHILD = r"""
import json, resource, sys, time
import anndata as ad, h5py, numpy as np, pandas as pd
from dask.distributed import get_task_stream
from anndata.experimental import read_elem_lazy
from dask.distributed import Client, LocalCluster
import secact

path, folder, workers, batch, repeats, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
secact.datasets.signature("SecAct")
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
        Client(cluster) as client, h5py.File(path, "r") as f:
    obs = ad.io.read_elem(f["obs"])
    var = ad.io.read_elem(f["var"])
    lazy = read_elem_lazy(f["X"], chunks=(batch, -1))
    adata = ad.AnnData(lazy, obs=obs, var=var)
    secact.tl.activity(adata[: 2 * batch], "SecAct", method="analytic", out=f"{folder}/warm.h5ad",
                       batch_size=batch, progress=False)
    walls, main_cpu, task_s = [], [], []
    for i in range(repeats):
        out = f"{folder}/side_{workers}_{dtype}_{i}.h5ad"
        c0 = cpu()
        with get_task_stream(client) as ts:
            t0 = time.perf_counter()
            secact.tl.activity(adata, "SecAct", method="analytic", out=out, batch_size=batch, dtype=dtype, progress=False)
            walls.append(time.perf_counter() - t0)
        main_cpu.append(cpu() - c0)
        task_s.append(sum(s["stop"] - s["start"] for t in ts.data for s in t["startstops"] if s["action"] == "compute"))
    z = ad.read_h5ad(out, backed="r").X[:50]
print(json.dumps({"walls": walls, "n_obs": adata.n_obs, "checksum": float(np.nansum(z)),
                  "main_cpu": main_cpu, "task_s": task_s}))
"""


SOLO = r"""
import sys, time, anndata as ad, secact
path, out, start, stop, batch, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
secact.datasets.signature("SecAct")
secact.settings.n_jobs = 1
a = ad.read_h5ad(path, backed="r")
secact.tl.activity(a[:batch].to_memory(), "SecAct", method="analytic", progress=False)  # compile
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
secact.tl.activity(a[start:stop], "SecAct", method="analytic", out=out, batch_size=batch, dtype=dtype, progress=False)
print(time.perf_counter() - t0, flush=True)
"""


def ceiling(path: Path, folder: Path, n_obs: int, batch: int, dtype: str, k: int) -> float:
    """Wall time of ``k`` plain processes (no dask), each running a serial single-threaded
    sidecar run on its share of the cells, started together: what any parallel executor can
    reach on this machine."""
    share = -(-n_obs // k)
    procs = []
    for i in range(k):
        cmd = [
            sys.executable,
            "-c",
            SOLO,
            str(path),
            str(folder / f"solo_{k}_{i}.h5ad"),
            str(i * share),
            str(min(n_obs, (i + 1) * share)),
            str(batch),
            dtype,
        ]
        procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.wait()
    wall = time.perf_counter() - t0
    for i in range(k):
        (folder / f"solo_{k}_{i}.h5ad").unlink(missing_ok=True)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--nnz-per-cell", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"], help="storage dtypes to run")
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="secact-bench-dask-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"cells_{args.cells}.h5ad"
    if not path.exists():
        t0 = time.perf_counter()
        write_h5ad(path, args.cells, args.genes, args.nnz_per_cell)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    print(
        f"{args.cells} cells x {args.genes} genes, SecAct, method='analytic', out= sidecar, "
        f"batch {args.batch_size}, {os.cpu_count()} cores"
    )
    print(
        f"{'storage':<10}{'workers (1 thread each)':<26}{'median wall':>12}{'cells/s':>10}"
        f"{'client CPU':>12}{'task time':>11}   runs"
    )
    for dtype in args.dtype:
        results = {}
        for k in args.workers:
            cmd = [
                sys.executable,
                "-c",
                CHILD,
                str(path),
                str(folder),
                str(k),
                str(args.batch_size),
                str(args.repeats),
                dtype,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            if proc.returncode:
                sys.exit(proc.stderr)
            results[k] = json.loads(proc.stdout.strip().splitlines()[-1])
        base = None
        for k, r in results.items():
            walls = sorted(r["walls"])
            med = walls[len(walls) // 2]
            base = base or med
            runs = ", ".join(f"{w:.1f}" for w in r["walls"])
            mc = sorted(r["main_cpu"])[len(walls) // 2]
            tk = sorted(r["task_s"])[len(walls) // 2]
            print(
                f"{dtype:<10}{k:<26}{med:>10.2f} s{r['n_obs'] / med:>10,.0f}{mc:>10.2f} s{tk:>9.2f} s"
                f"   {runs}   speed-up {base / med:.2f}x"
            )
            if k == args.workers[-1] and k > 1:
                cores = os.cpu_count() or 1
                floor = (mc + tk) / min(cores, k + 1)
                print(
                    f"{'':<10}CPU-bound floor on {cores} cores, (client CPU + task time) / {min(cores, k + 1)}: "
                    f"{floor:.2f} s -> best possible speed-up {base / floor:.2f}x"
                )
        solo = {
            k: sorted(
                ceiling(path, folder, args.cells, args.batch_size, dtype, k) for _ in range(args.repeats)
            )[args.repeats // 2]
            for k in args.workers
        }
        print(
            f"{'':<10}no dask, {args.workers[-1]} plain processes on {args.workers[-1]} shares vs 1 process: "
            + ", ".join(f"{k}: {w:.2f} s" for k, w in solo.items())
            + f" -> machine ceiling {solo[args.workers[0]] / solo[args.workers[-1]]:.2f}x"
        )
        same = len({round(r["checksum"], 3) for r in results.values()}) == 1
        print(f"{'':<10}same results on every cluster: {same} (target: speed-up >= 1.6x with 2 workers)")


if __name__ == "__main__":
    main()
