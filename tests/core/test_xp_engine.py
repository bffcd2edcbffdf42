"""The array-API engine (the GPU engine's code) against the CPU engine, on the CPU.

Every line of :class:`secact.core.xp_engine.XpEngine` runs here on NumPy (through
``array_api_compat``) and on ``array_api_strict`` with a non-default device, whose checks
refuse any array that mixes devices or any operation outside the standard. Results must equal
the CPU engine's to 1e-10 (beta, se, zscore) with identical p-values.
"""

from __future__ import annotations

import pickle
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from secact.core.engine import Engine
from secact.core.permutations import RNGS, permutation_table
from secact.core.ridge import ridge_model
from secact.core.xp_engine import ArrayDevice, XpEngine, choose_sizes, part_bytes

xps = pytest.importorskip("array_api_strict")

STATS = ("beta", "se", "zscore", "pvalue")


def _strict() -> ArrayDevice:
    return ArrayDevice(xps, xps.Device("device1"), host=xps.Device("CPU_DEVICE"))


DEVICES = {"numpy": ArrayDevice, "strict": _strict}


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(11)
    n, p, m = 240, 9, 17
    model = ridge_model(rng.normal(size=(n, p)), lam=10.0)
    counts = rng.poisson(0.5, size=(m, n)).astype(float)
    counts[3] = 0.0
    counts[3, 7] = 2.0  # one stored value only
    values = np.log2(counts * 1e4 / np.maximum(counts.sum(1, keepdims=True), 1) + 1)
    values[5] = 0.0  # constant: NaN row
    values[9] = 1.5  # constant, not zero
    return model, values, values[values.sum(1) > 0].mean(axis=0)


def _assert_same(got, ref, *, counts: bool = True):
    """beta, se, zscore to 1e-10; p-values identical when they are permutation counts, else
    (analytic: ``2 * Phi(-|z|)`` of z-scores equal to 1e-10) equal to 1e-10 relative."""
    for key in STATS:
        a, b = getattr(got, key), getattr(ref, key)
        assert a.shape == b.shape, key
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=key)
        if key == "pvalue" and counts:
            np.testing.assert_array_equal(a, b, err_msg=key)
        elif key == "pvalue":
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=0, err_msg=key)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=key)


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn()


@pytest.mark.parametrize("device", list(DEVICES))
@pytest.mark.parametrize("rng", list(RNGS))
@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("with_offset", [True, False])
@pytest.mark.parametrize("rows", [17, 6])  # more samples than columns (Tt gathered), fewer (z)
def test_permutation_equals_cpu_engine(problem, device, rng, layout, with_offset, rows):
    model, values, offset = problem
    values = values[:rows]
    table = permutation_table(model.n_genes, 40, rng=rng, seed=7)
    off = offset if with_offset else None
    ref = _quiet(lambda: Engine(model, table=table, offset=off, layout=layout).run(values))
    for k in (None, 1, 7, 40):  # odd chunks, one chunk, the budget's choice
        xe = XpEngine(model, table=table, offset=off, device=DEVICES[device](), k=k)
        for block in (values, sp.csr_matrix(values), sp.csc_matrix(values)):
            _assert_same(_quiet(lambda xe=xe, block=block: xe.run(block)), ref)


@pytest.mark.parametrize("device", list(DEVICES))
@pytest.mark.parametrize("with_offset", [True, False])
def test_analytic_equals_cpu_engine(problem, device, with_offset):
    model, values, offset = problem
    off = offset if with_offset else None
    for layout in ("dense", "sparse"):
        ref = _quiet(
            lambda layout=layout: Engine(model, method="analytic", offset=off, layout=layout).run(
                sp.csr_matrix(values) if layout == "sparse" else values
            )
        )
        got = _quiet(
            lambda: XpEngine(model, method="analytic", offset=off, device=DEVICES[device]()).run(values)
        )
        _assert_same(got, ref, counts=False)


def test_constant_rows_are_nan_with_the_cpu_warning(problem):
    model, values, _ = problem
    table = permutation_table(model.n_genes, 20)
    with pytest.warns(RuntimeWarning, match=r"2 sample\(s\) are constant"):
        stats = XpEngine(model, table=table, device=_strict()).run(values)
    for key in STATS:
        v = getattr(stats, key)
        assert np.isnan(v[[5, 9]]).all()
        assert np.isfinite(np.delete(v, [5, 9], axis=0)).all()


def test_float32_products_as_on_cpu(problem):
    model, values, offset = problem
    table = permutation_table(model.n_genes, 60)
    ref = _quiet(
        lambda: Engine(model, table=table, offset=offset, dtype="float32", layout="dense").run(values)
    )
    got = _quiet(
        lambda: XpEngine(model, table=table, offset=offset, dtype="float32", device=_strict()).run(values)
    )
    exact = _quiet(lambda: XpEngine(model, table=table, offset=offset, device=_strict()).run(values))
    ok = np.isfinite(ref.zscore)
    # the observed beta stays float64; the permuted products are float32 (|delta z| < 1e-4)
    np.testing.assert_array_equal(got.beta, exact.beta)
    assert np.abs(got.zscore - ref.zscore)[ok].max() < 1e-4
    assert np.abs(got.zscore - exact.zscore)[ok].max() < 1e-4


def test_empty_block_and_parts_of_any_size(problem):
    model, values, offset = problem
    table = permutation_table(model.n_genes, 25)
    xe = XpEngine(model, table=table, offset=offset, device=_strict())
    empty = xe.run(values[:0])
    assert empty.zscore.shape == (0, model.n_proteins)
    whole = _quiet(lambda: xe.run(values))
    parts = [
        _quiet(lambda i=i: xe.run(sp.csr_matrix(values[i : i + 4]))) for i in range(0, values.shape[0], 4)
    ]
    stacked = {key: np.vstack([getattr(p, key) for p in parts]) for key in STATS}
    _assert_same(type(whole)(**stacked), whole)  # BLAS blocking differs with the rows: rounding


# ----------------------------------------------------------------------------------------------
# memory budget
# ----------------------------------------------------------------------------------------------
def test_part_bytes_formula():
    m, n, p, k, nnz = 2048, 8000, 657, 16, 1_000_000
    assert part_bytes(m, n, p, k, nnz) == 8 * (2 * m * n + k * p * (n + 2 * m) + 12 * m * p) + 12 * nnz
    assert (
        part_bytes(m, n, p, k, nnz, itemsize=4)
        == 8 * (2 * m * n + 12 * m * p) + 4 * k * p * (n + 2 * m) + 12 * nnz
    )


def test_choose_sizes_fits_the_budget():
    m, n, p, b = 2048, 8000, 657, 1000
    budget = 4 * 2**30
    rows, k = choose_sizes(m, n, p, b, budget)
    assert rows == m and 1 <= k < b
    assert part_bytes(rows, n, p, k) <= budget < part_bytes(rows, n, p, k + 1)
    # k never exceeds the permutations there are
    assert choose_sizes(10, 100, 5, 30, budget) == (10, 30)
    # too little for all rows with one permutation: fewer rows, k = 1
    small = part_bytes(100, n, p, 1)
    rows, k = choose_sizes(m, n, p, b, small)
    assert k == 1 and rows <= 100 and part_bytes(rows, n, p, 1) <= small
    with pytest.raises(MemoryError, match="gpu_memory"):
        choose_sizes(m, n, p, b, 1000)


def test_engine_stays_within_its_budget_on_numpy(problem):
    """tracemalloc sees every NumPy allocation: the engine's peak on the NumPy device stays
    within the budget it was given (plus its constants)."""
    rng = np.random.default_rng(0)
    n, p, m, b = 2000, 40, 300, 64
    model = ridge_model(rng.normal(size=(n, p)), lam=10.0)
    values = rng.normal(size=(m, n))
    table = permutation_table(n, b)
    budget = part_bytes(m, n, p, 8)
    xe = XpEngine(model, table=table, device=ArrayDevice(budget=budget))
    xe._constants()  # constants (Tt, inverse table) are not part of the budget
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        stats = xe.run(values)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert xe.last_sizes == (m, 8)
    assert peak <= budget, (peak, budget)
    _assert_same(stats, Engine(model, table=table, layout="dense").run(values))


class _Tight:
    """A namespace whose permutation products fail beyond ``limit`` permutations (a device OOM)."""

    __name__ = "tight"

    def __init__(self, xp, limit, p):
        self._xp, self._limit, self._p, self.calls = xp, limit, p, []

    def __getattr__(self, name):
        return getattr(self._xp, name)

    def matmul(self, a, b):
        k = b.shape[1] // self._p  # permutations side by side (1 for the observed beta)
        if k > 1:
            self.calls.append(k)
            if k > self._limit:
                raise MemoryError("out of device memory (test)")
        return self._xp.matmul(a, b)


def test_out_of_memory_halves_k_and_retries(problem):
    model, values, offset = problem
    table = permutation_table(model.n_genes, 40)
    ref = _quiet(lambda: Engine(model, table=table, offset=offset, layout="dense").run(values))
    tight = _Tight(xps, limit=6, p=model.n_proteins)
    dev = ArrayDevice(tight, xps.Device("device1"), host=xps.Device("CPU_DEVICE"))
    xe = XpEngine(model, table=table, offset=offset, device=dev)
    got = _quiet(lambda: xe.run(values))
    _assert_same(got, ref)
    assert tight.calls[:4] == [40, 20, 10, 5] and set(tight.calls[4:]) == {5}  # halved until it fits
    assert xe.last_sizes == (values.shape[0], 5)


# ----------------------------------------------------------------------------------------------
# pickling (dask scatters the job to workers)
# ----------------------------------------------------------------------------------------------
def test_pickled_engine_holds_no_device_arrays(problem):
    model, values, offset = problem
    table = permutation_table(model.n_genes, 30)
    xe = XpEngine(model, table=table, offset=offset, device=_strict())
    first = _quiet(lambda: xe.run(values))
    assert xe._consts  # device copies of Tt and the inverse table
    payload = pickle.dumps(xe)
    assert b"array_api_strict._array_object" not in payload
    again = pickle.loads(payload)
    assert again._consts == {}
    assert again.device.device == xps.Device("device1")
    _assert_same(_quiet(lambda: again.run(values)), first)
