"""Bulk inference on the Ly86 profile with the SecAct signature and 1,000 permutations.

Prints the in-process wall time of a cold and of warm calls (median of several) for the R 1.1
default (grouped, mt19937), the legacy ungrouped srand run and the analytic method, and, when
secactpy is importable, SecActPy's time on the same profile with the ratio.

    python benchmarks/bench_bulk.py [--repeats 7] [--secactpy]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd

import secact

HERE = Path(__file__).resolve().parent
PROFILE = HERE.parent.parent / "shared" / "reference" / "ly86" / "Ly86-Fc_vs_Vehicle_logFC.txt"


def timed(fn, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - t0)
    return cold, statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", default=str(PROFILE))
    parser.add_argument("--secactpy", action="store_true", help="also time secactpy (slow)")
    args = parser.parse_args()
    profile = pd.read_csv(args.profile, sep=r"\s+")
    secact.datasets.signature("SecAct")  # download / parse outside the timings
    runs = {
        "R 1.1 default (grouped, mt19937, B=1000)": dict(rng="mt19937"),
        "legacy (ungrouped, srand, B=1000)": dict(rng="srand", group_signatures=False),
        "analytic (grouped)": dict(method="analytic"),
    }
    print(f"profile: {profile.shape[0]} genes x {profile.shape[1]} sample(s); SecAct signature")
    rows = []
    for name, kw in runs.items():
        cold, warm = timed(
            lambda kw=kw: secact.infer(profile, "SecAct", differential=True, **kw), args.repeats
        )
        rows.append((name, cold, warm))
        print(f"  {name:<42} cold {cold:6.2f} s   warm (median of {args.repeats}) {warm:6.3f} s")
    from secact.core.plan import clear_caches

    def uncached():
        clear_caches()
        secact.infer(profile, "SecAct", differential=True)

    _, warm = timed(uncached, args.repeats)
    print(
        f"  {'R 1.1 default, grouping/projection caches cleared':<42} {'':>13}   warm (median of {args.repeats}) {warm:6.3f} s"
    )
    if args.secactpy:
        try:
            import secactpy
        except ImportError:
            print("  secactpy not importable: pip install secactpy==0.3.1")
            return
        t0 = time.perf_counter()
        secactpy.secact_activity_inference(profile, is_differential=True, verbose=False)
        sp_time = time.perf_counter() - t0
        print(f"  {'secactpy 0.3.1 (same profile, defaults)':<42} {sp_time:6.2f} s")
        print(f"  ratio secactpy / secact warm (default): {sp_time / rows[0][2]:.1f}x")


if __name__ == "__main__":
    main()
