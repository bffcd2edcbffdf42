"""Timing of ``secact.tl.coxph`` on a cohort of 500 samples x 1,170 proteins.

Prints the median of a few runs (no assertions), without and with covariates:

    python benchmarks/bench_coxph.py [--samples 500] [--proteins 1170] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import secact


def cohort(n: int, p: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    samples = [f"S{i:04d}" for i in range(n)]
    act = pd.DataFrame(rng.standard_normal((n, p)), index=samples, columns=[f"P{j:04d}" for j in range(p)])
    hazard = np.exp(0.8 * act.iloc[:, 0] - 0.6 * act.iloc[:, 1])
    t_event = rng.exponential(1 / hazard)
    t_cens = rng.exponential(1.5, n)
    clinical = pd.DataFrame(
        {
            "Time": np.round(np.minimum(t_event, t_cens), 2) + 0.01,  # ties, as in real follow-up
            "Event": (t_event <= t_cens).astype(int),
            "age": rng.normal(60, 10, n).round(),
            "stage": rng.choice(["I", "II", "III"], n),
        },
        index=samples,
    )
    return act, clinical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--proteins", type=int, default=1170)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    act, clinical = cohort(args.samples, args.proteins)
    print(f"cohort: {args.samples} samples x {args.proteins} proteins, {clinical.Event.sum()} events")
    for label, covariates in (("no covariates", []), ("age + stage (3 columns)", None)):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            table = secact.tl.coxph(act, clinical, covariates=covariates)
            times.append(time.perf_counter() - t0)
        top = table["risk_z"].abs().sort_values(ascending=False).index[:2].tolist()
        print(
            f"tl.coxph, {label}: median {np.median(times):.3f} s (min {min(times):.3f}, "
            f"{args.repeats} runs); top |risk z|: {top}"
        )


if __name__ == "__main__":
    main()
