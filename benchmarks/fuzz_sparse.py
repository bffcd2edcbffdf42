"""Fuzz the sparse structure of .h5ad files: corrupt ``X/indices``, ``X/indptr`` and ``X/data``
at random and run ``secact.tl.activity`` on a path, a backed AnnData and by group.

Every run must either equal the answer for the file's contents (computed from the raw arrays
after scipy's full structure check, in memory) or raise a clear error (``ValueError`` /
``OSError``) — never crash the process, never give a different answer. A crash kills this
process: run it in a subprocess (``tests/io/test_fuzz.py`` does, with 200 trials).

    python benchmarks/fuzz_sparse.py [--trials 1000] [--seed 0] [--dir DIR]

Prints one JSON line per trial and a summary line ``{"summary": ...}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import scipy.sparse as sp

import secact

CLEAR = (ValueError, OSError)


def base_file(folder: Path, fmt: str) -> Path:
    a = secact.datasets.simulate(n_cells=48, n_genes=300, seed=11)
    a.X = sp.csr_matrix(a.X) if fmt == "csr" else sp.csc_matrix(a.X)
    path = folder / f"clean_{fmt}.h5ad"
    a.write_h5ad(path)  # uncompressed
    return path


def corrupt(src: Path, dst: Path, rng: np.random.Generator) -> str:
    """Copy ``src`` to ``dst`` with one to three random changes in X's arrays; returns what changed."""
    dst.write_bytes(src.read_bytes())
    changes = []
    with h5py.File(dst, "r+") as f:
        x = f["X"]
        for _ in range(int(rng.integers(1, 4))):
            name = str(rng.choice(["indices", "indptr", "data"]))
            ds = x[name]
            i = int(rng.integers(ds.shape[0]))
            old = ds[i]
            if name == "data":
                new = rng.choice([np.nan, np.inf, -1.0, 0.5, 1e300, old + 1, old * 2, 0.0])
            elif name == "indices":
                n = int(
                    x.attrs["shape"][1] if x.attrs["encoding-type"] == "csr_matrix" else x.attrs["shape"][0]
                )
                new = rng.choice([-1, -(2**31), n, n + 7, 2**31 - 1, int(rng.integers(n)), old + 1])
            else:
                nnz = int(x["indices"].shape[0])
                new = rng.choice([-1, nnz + 1, 2**40, 0, int(rng.integers(nnz + 1)), old - 1, old + 1])
            try:
                ds[i] = new
            except (OverflowError, ValueError, TypeError):
                new = old  # not representable in the stored type
            changes.append(f"{name}[{i}] {old!r} -> {new!r}")
    return "; ".join(changes)


def truth(path: Path):
    """The file's matrix after scipy's full structure check, or the error that check raises."""
    with h5py.File(path, "r") as f:
        x = f["X"]
        kind = x.attrs["encoding-type"]
        shape = tuple(int(n) for n in x.attrs["shape"])
        parts = (x["data"][...], x["indices"][...], x["indptr"][...])
    cls = sp.csr_matrix if kind == "csr_matrix" else sp.csc_matrix
    try:
        m = cls(parts, shape=shape)
        m.check_format(full_check=True)
    except (ValueError, IndexError, TypeError) as err:
        return None, err
    return m, None


def run(kind: str, path: Path, out: Path):
    kw = {"method": "analytic", "progress": False, "batch_size": 16}
    if kind == "path":
        secact.tl.activity(path, "CytoSig", out=out, overwrite=True, **kw)
        return ad.read_h5ad(out).X
    if kind == "backed":
        a = ad.read_h5ad(path, backed="r")
        try:
            secact.tl.activity(a, "CytoSig", **kw)
            return np.asarray(a.obsm["secact_zscore"])
        finally:
            a.file.close()
    if kind == "group":
        res = secact.tl.activity(path, "CytoSig", groupby="group", **kw)
        return res.X
    raise ValueError(kind)


def reference(matrix, path: Path, kind: str):
    a = ad.read_h5ad(path, backed="r")
    mem = ad.AnnData(matrix.tocsr(), obs=a.obs.copy(), var=a.var.copy())
    a.file.close()
    kw = {"method": "analytic", "progress": False}
    if kind == "group":
        return (
            secact.tl.activity(mem, "CytoSig", groupby="group", copy=True, **kw)
            .uns["secact"]["groups"]["zscore"]
            .to_numpy()
        )
    secact.tl.activity(mem, "CytoSig", **kw)
    return np.asarray(mem.obsm["secact_zscore"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit (runaway guard)")
    args = parser.parse_args()
    limit = int(args.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("ignore")
    folder = Path(args.dir or tempfile.mkdtemp(prefix="secact-fuzz-"))
    folder.mkdir(parents=True, exist_ok=True)
    clean = {fmt: base_file(folder, fmt) for fmt in ("csr", "csc")}
    rng = np.random.default_rng(args.seed)
    counts = {"trials": 0, "runs": 0, "equal": 0, "clear_error": 0, "wrong": 0, "unclear_error": 0}
    for trial in range(args.trials):
        fmt = "csr" if trial % 3 else "csc"
        path = folder / "fuzzed.h5ad"
        what = corrupt(clean[fmt], path, rng)
        matrix, invalid = truth(path)
        counts["trials"] += 1
        for kind in ("path", "backed", "group"):
            print(json.dumps({"trial": trial, "fmt": fmt, "kind": kind, "change": what}), flush=True)
            expect = err_ref = None
            if matrix is not None:
                try:
                    expect = reference(matrix, path, kind)
                except CLEAR as err:
                    err_ref = err
            try:
                got = run(kind, path, folder / "out.h5ad")
                error = None
            except CLEAR as err:
                got, error = None, err
            except Exception as err:  # counted as a failure
                got, error = None, err
                counts["unclear_error"] += 1
                print(json.dumps({"unclear": f"{type(err).__name__}: {err}", "trial": trial, "kind": kind}))
                continue
            counts["runs"] += 1
            if error is not None:
                if expect is not None:  # the file is fine but we refused it
                    counts["wrong"] += 1
                    print(json.dumps({"refused_valid": str(error), "trial": trial, "kind": kind}))
                else:
                    counts["clear_error"] += 1
            elif invalid is not None or err_ref is not None:
                counts["wrong"] += 1  # an answer from a damaged file
                print(json.dumps({"answered_invalid": str(invalid or err_ref), "trial": trial, "kind": kind}))
            elif np.allclose(got, expect, rtol=0, atol=1e-10, equal_nan=True):
                counts["equal"] += 1
            else:
                counts["wrong"] += 1
                print(
                    json.dumps(
                        {"different": float(np.nanmax(np.abs(got - expect))), "trial": trial, "kind": kind}
                    )
                )
    print(json.dumps({"summary": counts}), flush=True)
    sys.exit(0 if counts["wrong"] == counts["unclear_error"] == 0 else 1)


if __name__ == "__main__":
    main()
