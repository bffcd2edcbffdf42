"""Loading the SecAct signature and simulating a data set: the timings the unit tests do not assert.

Prints the in-process wall time of

* a warm reload of ``signature("SecAct")`` from the parsed binary copy kept beside the text
  file (after ``_load_named.cache_clear()``, median of several),
* a cold parse of the text file ``SecAct.tsv.gz`` itself (what the first load pays once),
  side by side with the reload and the ratio parsed / text,
* ``simulate(2000, 5000, seed=0)`` (median of several, the CytoSig signature already loaded).

    python benchmarks/bench_loading.py [--reloads 5] [--simulate-repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from secact.datasets import SIGNATURES, signature
from secact.datasets import _signatures as sigmod
from secact.datasets._simulate import simulate


def median_time(fn, repeats: int, setup=None) -> float:
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--simulate-repeats", type=int, default=3)
    args = parser.parse_args()

    spec = SIGNATURES["SecAct"]
    folder = sigmod.data_dir()
    text = folder / spec.filename
    parsed = sigmod._parsed_path(spec, folder)
    signature("SecAct")  # download / verify / write the parsed copy outside the timings
    if not parsed.is_file():
        print(f"no parsed copy at {parsed} (read-only {folder}?): the reloads below parse the text")
    print(f"SecAct signature {spec.shape[0]} genes x {spec.shape[1]} proteins in {folder}")

    reload = median_time(lambda: signature("SecAct"), args.reloads, setup=sigmod._load_named.cache_clear)
    t0 = time.perf_counter()
    sigmod._read_table(text)
    cold = time.perf_counter() - t0

    simulate(50, seed=0)  # warm the CytoSig signature cache
    sim = median_time(lambda: simulate(2000, 5000, seed=0), args.simulate_repeats)

    rows = [
        (f"reload from the parsed copy ({parsed.name})", f"median of {args.reloads}", reload),
        (f"cold parse of the text file ({text.name})", "once", cold),
        ("simulate(2000, 5000, seed=0)", f"median of {args.simulate_repeats}", sim),
    ]
    width = max(len(name) for name, _, _ in rows)
    for name, how, seconds in rows:
        print(f"  {name:<{width}}  {how:<12} {seconds:7.3f} s")
    print(
        f"  ratio parsed / text: {reload:.3f} s / {cold:.3f} s = {reload / cold:.3f} ({cold / reload:.0f}x faster)"
    )


if __name__ == "__main__":
    main()
