"""Benchmark ``secact.tl.differential`` against ``illico.asymptotic_wilcoxon``.

Simulated data: 30,000 cells x 3,000 genes, log1p(normalize_total(1e4)) CSR float32,
60 perturbation groups plus a ``non-targeting`` reference (about 1/6 of the cells).

Each configuration runs in a fresh subprocess (so peak RSS and the cold call are its own):
the cold call is the first call in the process (numba kernels loaded from the on-disk
cache, or compiled if the cache is empty), the warm figure is the median of the
following calls. Both tools use the same number of threads (``--threads``, default:
all cores).

Run: ``python benchmarks/bench_differential.py [--threads N] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_CELLS, N_GENES, N_GROUPS = 30_000, 3_000, 60


def simulate(path: Path, seed: int = 0) -> None:
    import anndata as ad
    import numpy as np
    import pandas as pd
    from scipy import sparse

    rng = np.random.default_rng(seed)
    labels = np.array(
        ["non-targeting"] * 5_000 + [f"g{i:02d}" for i in range(N_GROUPS) for _ in range(25_000 // N_GROUPS)]
    )
    labels = np.concatenate([labels, rng.choice(labels[5_000:], N_CELLS - labels.size)])
    rng.shuffle(labels)
    codes = pd.Categorical(labels).codes
    gene_mu = np.exp(rng.normal(-1.5, 1.5, N_GENES)).astype(np.float32)
    # every group shifts 30 random genes by 2**(+-1)
    fc = np.ones((N_GROUPS + 1, N_GENES), dtype=np.float32)
    for g in range(N_GROUPS + 1):
        idx = rng.choice(N_GENES, 30, replace=False)
        fc[g, idx] = 2.0 ** rng.choice([-1.0, 1.0], 30)
    size = np.exp(rng.normal(0, 0.4, N_CELLS)).astype(np.float32)
    rows = []
    for a in range(0, N_CELLS, 5_000):
        lam = size[a : a + 5_000, None] * gene_mu[None, :] * fc[codes[a : a + 5_000]]
        rows.append(sparse.csr_matrix(rng.poisson(lam).astype(np.float32)))
    x = sparse.vstack(rows).tocsr()
    lib = np.asarray(x.sum(1)).ravel()
    x = sparse.diags((1e4 / np.maximum(lib, 1)).astype(np.float32)) @ x
    x.data = np.log1p(x.data)
    x = x.astype(np.float32).tocsr()
    x.sort_indices()
    obs = pd.DataFrame({"guide": pd.Categorical(labels)}, index=[f"c{i}" for i in range(N_CELLS)])
    var = pd.DataFrame(index=[f"gene{j}" for j in range(N_GENES)])
    ad.AnnData(x, obs=obs, var=var).write_h5ad(path)


def _status_mb(field: str) -> float:
    # /proc/self/status (Linux): unlike ru_maxrss, VmHWM is not inherited from the parent
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def _current_rss_mb() -> float:
    return _status_mb("VmRSS")


def child(mode: str, path: str, threads: int, repeats: int, reference: str) -> dict:
    import anndata as ad
    import numba
    import numpy as np

    numba.set_num_threads(threads)
    if mode == "illico":
        import importlib

        import illico

        # illico 0.6.0 with numpy < 2 formats a float as an int in a log message
        # (uint64 group count times an int gene count): hand it a Python int
        iaw = importlib.import_module("illico.asymptotic_wilcoxon")
        enc = iaw.encode_and_count_groups

        def _enc(*a, **k):
            u, gc = enc(*a, **k)
            return u, gc._replace(n_selected_groups=int(gc.n_selected_groups))

        iaw.encode_and_count_groups = _enc
        adata = ad.read_h5ad(path)

        def call():
            return illico.asymptotic_wilcoxon(
                adata,
                is_log1p=True,
                group_keys="guide",
                reference=None if reference == "rest" else reference,
                n_threads=threads,
            )

    else:
        import secact

        backed = mode.startswith("secact-backed")
        adata = ad.read_h5ad(path, backed="r") if backed else ad.read_h5ad(path)
        # "secact-backed-300": 300-gene chunks, i.e. bounded memory (one file pass per chunk for CSR)
        chunk = int(mode.rsplit("-", 1)[1]) if mode.startswith("secact-backed-") else None

        def call():
            secact.tl.differential(adata, "guide", reference=reference, progress=False, chunk_size=chunk)
            return adata.uns["secact_de"]["results"]

    loaded_mb = _current_rss_mb()
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        res = call()
        times.append(time.perf_counter() - t)
    out = {
        "mode": mode,
        "cold": times[0],
        "warm": float(np.median(times[1:])),
        "maxrss_mb": _peak_rss_mb(),
        "loaded_mb": loaded_mb,
    }
    # p-values for the agreement check, ordered by (group, gene)
    if mode == "illico":
        df = res.reset_index().astype({"pert": str, "feature": str})
        df = df[df["pert"] != reference].sort_values(["pert", "feature"])
        out["p"] = df["p_value"].to_numpy().tolist() if "p_value" in df else None
    else:
        res = res.assign(group=res["group"].astype(str), gene=res["gene"].astype(str))
        out["p"] = res.sort_values(["group", "gene"])["pvalue"].to_numpy().tolist()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--reference", default="non-targeting", help="'non-targeting' or 'rest' (both with 'all')"
    )
    ap.add_argument("--data", default=None, help="reuse this .h5ad instead of simulating")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.threads, args.repeats, args.reference)))
        return
    try:
        import illico  # noqa: F401

        have_illico = True
    except ImportError:
        have_illico = False
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.data) if args.data else Path(tmp) / "bench.h5ad"
        if not args.data:
            t = time.perf_counter()
            simulate(path)
            print(
                f"simulated {N_CELLS} cells x {N_GENES} genes, {N_GROUPS} groups + non-targeting "
                f"in {time.perf_counter() - t:.1f} s ({path.stat().st_size / 2**20:.0f} MiB .h5ad, CSR float32)"
            )
        refs = ["non-targeting", "rest"] if args.reference == "all" else [args.reference]
        for ref in refs:
            modes = ["secact-memory", "secact-backed", "secact-backed-300"] + (
                ["illico"] if have_illico else []
            )
            res = {}
            for mode in modes:
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    "--data",
                    str(path),
                    "--threads",
                    str(args.threads),
                    "--repeats",
                    str(args.repeats),
                    "--reference",
                    ref,
                ]
                env = dict(os.environ, NUMBA_NUM_THREADS=str(args.threads))
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
                if proc.returncode != 0:
                    print(f"{mode}: failed\n{proc.stderr[-2000:]}")
                    continue
                res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"\nreference={ref!r}, threads={args.threads}, warm = median of {args.repeats} calls")
            print(f"{'tool':<18}{'cold s':>8}{'warm s':>8}{'RSS after load MiB':>20}{'peak RSS MiB':>14}")
            for mode, r in res.items():
                print(
                    f"{mode:<18}{r['cold']:>8.2f}{r['warm']:>8.2f}{r['loaded_mb']:>20.0f}{r['maxrss_mb']:>14.0f}"
                )
            if "illico" in res:
                il = res["illico"]
                for mode in ("secact-memory", "secact-backed"):
                    if mode in res:
                        r = res[mode]
                        print(
                            f"illico / {mode}: warm {il['warm'] / r['warm']:.2f}x, cold {il['cold'] / r['cold']:.2f}x"
                            " (> 1: secact faster)"
                        )
                import numpy as np

                p_il = np.asarray(il.get("p") or [], dtype=float)
                p_se = np.asarray(res.get("secact-memory", {}).get("p", []), dtype=float)
                if p_il.size and p_il.size == p_se.size:
                    ok = np.isfinite(p_il) & np.isfinite(p_se)
                    rel = np.abs(p_il[ok] - p_se[ok]) / np.maximum(p_se[ok], 1e-300)
                    print(
                        f"p-value agreement with illico: max rel diff {rel.max():.2e} over {ok.sum()} tests"
                    )
            elif not have_illico:
                print("illico not importable: no ratio")
            if "secact-memory" in res and "secact-backed" in res:
                same = res["secact-memory"]["p"] == res["secact-backed"]["p"]
                print(f"backed == in-memory p-values: {same}")


if __name__ == "__main__":
    main()
