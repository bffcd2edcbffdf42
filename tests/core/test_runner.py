"""secact.core.runner: the one loop over blocks, its executors and its guarantees."""

from __future__ import annotations

import sys
import threading
from typing import ClassVar

import numpy as np
import pytest

import secact
from secact.core import runner


def _items(n, size=3):
    return [(s, min(s + size, n), np.arange(s, min(s + size, n), dtype=float)) for s in range(0, n, size)]


def _square(block, start):
    return block**2 + start * 0


@pytest.mark.parametrize("executor", ["serial", "background", "dask"])
def test_results_reach_the_sink_in_order(executor):
    items = _items(20)
    if executor == "dask":
        dask = pytest.importorskip("dask")
        items = [(a, b, dask.delayed(lambda x: x)(blk)) for a, b, blk in items]
    seen = []
    runner.run(items, _square, lambda a, b, r: seen.append((a, b, r)), executor=executor, progress=False)
    assert [(a, b) for a, b, _ in seen] == [(a, b) for a, b, _ in _items(20)]
    np.testing.assert_array_equal(np.concatenate([r for _, _, r in seen]), np.arange(20.0) ** 2)


@pytest.mark.parametrize("executor", ["serial", "background", "dask"])
def test_errors_stop_the_run_and_are_raised(executor):
    def boom(block, start):
        if start == 6:
            raise RuntimeError("block 6 failed")
        return block

    seen = []
    with pytest.raises(RuntimeError, match="block 6 failed"):
        runner.run(_items(30), boom, lambda a, b, r: seen.append(a), executor=executor, progress=False)
    assert 6 not in seen

    def bad_sink(a, b, r):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        runner.run(_items(30), _square, bad_sink, executor=executor, progress=False)


def test_unknown_executor():
    with pytest.raises(ValueError, match="executor"):
        runner.run(_items(3), _square, lambda *a: None, executor="gpu-someday", progress=False)


def test_local_dask_executor_runs_blocks_concurrently():
    """With no cluster, blocks of a dask source run in a thread pool of settings.n_jobs threads."""
    pytest.importorskip("dask")
    both = threading.Barrier(2, timeout=30)

    def meet(block, start):
        both.wait()  # returns only when two blocks are in flight at once
        return block

    seen = []
    with secact.settings.override(n_jobs=2):
        runner.run(_items(12), meet, lambda a, b, r: seen.append(a), executor="dask", progress=False)
    assert seen == [0, 3, 6, 9]


def test_distributed_executor_keeps_blocks_in_flight_on_the_cluster():
    """On a dask.distributed cluster two single-threaded workers compute two blocks at once."""
    distributed = pytest.importorskip("dask.distributed")
    dask = pytest.importorskip("dask")
    cloudpickle = pytest.importorskip("cloudpickle")
    # The workers are fresh processes that cannot import this test module (plain `pytest`
    # does not put the checkout on sys.path): ship `_meet_on_cluster` by value, as a function
    # defined in a notebook would be. The engine's own functions go by reference (secact is
    # installed where the workers run).
    here = sys.modules[_meet_on_cluster.__module__]
    cloudpickle.register_pickle_by_value(here)
    try:
        seen = _run_on_local_cluster(distributed, dask)
    finally:
        cloudpickle.unregister_pickle_by_value(here)
    assert [a for a, _ in seen] == [0, 3, 6, 9]
    # blocks ran at the same time on the two workers (a serial run never meets another block)
    assert sum(met for _, met in seen) >= 2


def _run_on_local_cluster(distributed, dask):
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as c,
        distributed.Client(c),
    ):
        items = [(a, b, dask.delayed(np.asarray)(blk)) for a, b, blk in _items(12)]
        seen = []
        runner.run(
            items, _meet_on_cluster, lambda a, b, r: seen.append((a, r)), executor="dask", progress=False
        )
    return seen


def _meet_on_cluster(block, start):
    """Hold a lease and wait (bounded) until another block holds one too: True if it did."""
    import time

    from distributed import Semaphore

    sem = Semaphore(max_leases=4, name="secact-test-runner")
    with sem:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if sem.get_value() >= 2:
                return True
            time.sleep(0.02)
    return False


def test_progress_bar_counts_rows(capsys):
    runner.run(_items(10), _square, lambda *a: None, progress=True, total=10, desc="test-bar")
    assert "test-bar" in capsys.readouterr().err


def test_settings_validate_and_override():
    with pytest.raises(ValueError, match="batch_size"):
        secact.settings.batch_size = 0
    with pytest.raises(AttributeError, match="no setting"):
        secact.settings.batchsize = 10
    before = secact.settings.batch_size
    with secact.settings.override(batch_size=7):
        assert secact.settings.batch_size == 7
    assert secact.settings.batch_size == before


@pytest.mark.parametrize("executor", ["serial", "background"])
def test_kernels_in_a_run_use_n_jobs_threads(executor):
    import numba

    before = numba.get_num_threads()
    seen = []

    def fn(block, start):
        seen.append(numba.get_num_threads())
        return block

    items = [(i, i + 1, np.zeros(1)) for i in range(3)]
    with secact.settings.override(n_jobs=1):
        runner.run(items, fn, lambda a, b, r: None, executor=executor, progress=False)
    assert seen == [1, 1, 1]
    assert numba.get_num_threads() == before
    if numba.config.NUMBA_NUM_THREADS > 1:
        seen.clear()
        with secact.settings.override(n_jobs=2):
            runner.run(items, fn, lambda a, b, r: None, executor=executor, progress=False)
        assert seen == [2, 2, 2]


class _RecordingBar:
    """Stands in for tqdm: records every update."""

    instances: ClassVar[list] = []

    def __init__(self, *args, total=None, **kwargs):
        self.total = total
        self.updates: list[int] = []
        _RecordingBar.instances.append(self)

    def update(self, n):
        self.updates.append(n)

    def close(self):
        pass


@pytest.mark.parametrize("sparse", [True, False])
def test_progress_moves_within_a_long_permutation_block(monkeypatch, sparse):
    """One block of 150 cells with permutations: the bar moves several times before the block's
    result arrives, counts exactly the cells in the end, and the results do not change."""
    import tqdm.auto

    # all CytoSig genes: at ~800 counts per cell the sparse kernel runs; at ~40,000 the dense
    # path, in permutation chunks made small here as they are for atlas-sized blocks
    from secact.core.engine import DENSE_FROM

    adata = secact.datasets.simulate(150, seed=3, sparse=sparse, mean_library_size=800 if sparse else 40_000)
    density = (adata.X != 0).mean()
    assert density < DENSE_FROM if sparse else density > DENSE_FROM
    monkeypatch.setattr(secact.settings, "permutation_chunk_bytes", 1 << 20)
    kw = {"method": "permutation", "n_permutations": 50, "batch_size": 1000, "stats": ["zscore", "pvalue"]}
    secact.tl.activity(adata, "CytoSig", progress=False, key_added="quiet", **kw)
    _RecordingBar.instances.clear()
    monkeypatch.setattr(tqdm.auto, "tqdm", _RecordingBar)
    secact.tl.activity(adata, "CytoSig", progress=True, key_added="bar", **kw)
    [bar] = [b for b in _RecordingBar.instances if b.total == 150 and len(b.updates) > 1]
    assert sum(bar.updates) == 150
    assert len(bar.updates) >= 4  # parts of the one block, then its remainder (possibly 0)
    for stat in kw["stats"]:
        np.testing.assert_array_equal(adata.obsm[f"bar_{stat}"], adata.obsm[f"quiet_{stat}"])


def test_tick_without_a_bar_does_nothing():
    runner.tick(5)  # no run in progress: nothing to count, no error
    seen = []
    runner.run(_items(6), lambda b, s: (runner.tick(2), b)[1], lambda a, b, r: seen.append(r), progress=False)
    assert len(seen) == 2
