"""The block engine in array-API operations only: the GPU engine, verified on the CPU.

:class:`XpEngine` computes the same :class:`~secact.core.engine.BlockStats` as
:class:`~secact.core.engine.Engine` (same formulas, rounding-level constants, NaN rows for
constant samples, ``se``, ``zscore`` and permutation counts) with nothing but the operations
of the `array API standard <https://data-apis.org/array-api/>`_ on the namespace of an
:class:`ArrayDevice`. The same code runs on

* CuPy on a CUDA device (:mod:`secact.core.gpu`, the only module that imports CuPy),
* NumPy through ``array_api_compat`` and ``array_api_strict`` (whose device checks refuse any
  mixing of arrays from two devices) on the CPU, which is how CI checks every line of it
  against the CPU engine without a GPU.

How a block runs (``m`` samples x ``n`` overlap genes, ``p`` signature columns, ``B``
permutations): the block goes to the device dense (sparse blocks are densified there, one
block at a time), is centred and scaled per sample, and ``beta = z @ Tt``. With permutations,
``beta_b = z[:, perm_b] @ Tt = z @ Tt[inv_b]`` where ``inv_b`` inverts ``perm_b``: the
transposed inverse table (genes x permutations) lives on the device once per run, the permuted
copies of ``Tt`` for ``k`` permutations are gathered side by side with one ``take`` (``n x
k*p``) and multiplied in one GEMM (``m x k*p``) — for blocks of fewer samples than signature
columns (bulk profiles, groups) the permuted copies of ``z`` are gathered instead (``k*m x n``,
one GEMM with ``Tt``), the cheaper side —, and the moments are folded permutation by permutation in table order (the CPU engine's order).

Memory: a part of ``m`` rows with ``k`` permutations at a time holds about
``8 * (2*m*n + k*(n*min(m, p) + 2*m*p) + 12*m*p) + 12*nnz`` bytes besides the run's constants (``Tt`` and the
inverse table); :func:`choose_sizes` picks the largest ``k`` (then, if needed, fewer rows)
that fits the device's budget, and a device out-of-memory error halves ``k`` and retries.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from .engine import NEAR_CONSTANT, BlockStats, check_engine_args
from .params import Method
from .permutations import inverse_permutation_table
from .ridge import RidgeModel
from .runner import tick

__all__ = ["ArrayDevice", "XpEngine", "choose_sizes", "part_bytes"]

#: bytes of one value of the engine's float64 work arrays
_F8 = 8


def part_bytes(m: int, n: int, p: int, k: int, nnz: int = 0, itemsize: int = 8) -> int:
    """Device bytes of one part of ``m`` rows with ``k`` permutations in flight (a bound).

    ``2*m*n`` (the dense block and its centred copy, float64) + ``k*(n*min(m, p) + 2*m*p)``
    (the gathered permuted copies — of ``Tt`` when ``m >= p``, of ``z`` otherwise —, their
    products and one temporary of the product, in the product precision) + ``12*m*p`` (observed beta, ``|beta|``, three moments, the NaN fill, the fold's
    temporaries and the four results, float64) + ``12*nnz`` (a sparse block's values and
    indices before densification).
    """
    return _F8 * (2 * m * n + 12 * m * p) + itemsize * k * (n * min(m, p) + 2 * m * p) + 12 * nnz


def choose_sizes(
    m: int, n: int, p: int, n_perm: int, budget: int, *, nnz: int = 0, itemsize: int = 8
) -> tuple[int, int]:
    """``(rows, k)``: the largest number of permutations ``k`` (at most ``n_perm``) whose part
    of ``rows`` samples fits ``budget`` bytes, with all ``m`` rows when ``k >= 1`` fits, else
    the most rows for ``k = 1``.

    Raises :class:`MemoryError` when not even one sample with one permutation fits.
    """
    m = max(int(m), 1)
    n_perm = max(int(n_perm), 1)
    per_k = itemsize * (n * min(m, p) + 2 * m * p)
    rest = budget - part_bytes(m, n, p, 0, nnz, itemsize)
    if rest >= per_k:
        return m, int(min(n_perm, rest // per_k))
    # fewer rows, one permutation at a time; nnz scales with the rows kept
    per_row = _F8 * (2 * n + 12 * p) + itemsize * (n + 2 * p) + 12 * (nnz / m)  # n*min(rows, p) <= n*rows
    rows = int(budget // per_row)
    if rows < 1:
        msg = (
            f"one sample with one permutation needs {part_bytes(1, n, p, 1, 0, itemsize) / 2**20:.1f} MiB of "
            f"device memory, more than the budget of {budget / 2**20:.1f} MiB; raise "
            "secact.settings.gpu_memory or free device memory."
        )
        raise MemoryError(msg)
    return min(rows, m), 1


class ArrayDevice:
    """Where an :class:`XpEngine` keeps its arrays: an array namespace and a device, with the
    transfers to and from host memory.

    The base class serves host namespaces (NumPy through ``array_api_compat``, or
    ``array_api_strict`` with one of its devices); :class:`secact.core.gpu.CupyDevice` serves
    CuPy. Subclasses override the transfers and the memory facts.

    Parameters
    ----------
    xp
        An array-API namespace (default: ``array_api_compat.numpy``).
    device
        The device arrays are created on (``None``: the namespace's default).
    host
        A device of ``xp`` whose arrays NumPy can read (``None``: ``device``).
    budget
        Bytes the engine may hold at once (``None``: ``secact.settings.gpu_memory``, else
        4 GiB).
    """

    #: exceptions that mean the device ran out of memory (halve the work and retry)
    oom: tuple[type[BaseException], ...] = (MemoryError,)

    def __init__(self, xp=None, device=None, *, host=None, budget: int | None = None) -> None:
        if xp is None:
            import array_api_compat.numpy as xp_numpy

            xp = xp_numpy
        self.xp = xp
        self.device = device
        self.host = host
        self._budget = budget

    # -- identity ------------------------------------------------------------------------------
    @property
    def key(self) -> Any:
        """Identifies the device for per-device caches."""
        return (self.xp.__name__, str(self.device))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.xp.__name__}, device={self.device!r})"

    def context(self):
        """A context manager that makes this device current (nothing to do on the host)."""
        return contextlib.nullcontext()

    def release(self) -> None:
        """Give cached memory back after an out-of-memory error (nothing to do on the host)."""

    # -- memory --------------------------------------------------------------------------------
    def budget(self) -> int:
        """Bytes one part may use (``secact.settings.gpu_memory`` when set)."""
        from .._settings import settings

        if self._budget is not None:
            return int(self._budget)
        if settings.gpu_memory is not None:
            return int(settings.gpu_memory)
        return 4 * 2**30

    # -- transfers -----------------------------------------------------------------------------
    def put(self, array: np.ndarray):
        """A host array on the device (same dtype)."""
        return self.xp.asarray(np.ascontiguousarray(array), device=self.device)

    def dense(self, block):
        """A block (NumPy array, SciPy sparse matrix, or an array of ``xp``) as a dense float64
        array on the device (a sparse block is densified one block at a time)."""
        if sp.issparse(block):
            block = block.toarray()
        return self.put(np.asarray(block, dtype=np.float64))

    def to_host(self, x) -> np.ndarray:
        """An array of ``xp`` as a NumPy array."""
        if self.host is not None and self.host != self.device:
            x = x.to_device(self.host)
        return np.asarray(x)

    def ndtr(self, x):
        """The standard normal CDF elementwise (the array API has no ``erf``: on the host)."""
        from scipy.special import ndtr

        return self.put(ndtr(self.to_host(x)))

    # -- pickling: devices travel as their description, never with arrays ----------------------
    def __getstate__(self) -> dict:
        return {"xp": self.xp.__name__, "device": self.device, "host": self.host, "budget": self._budget}

    def __setstate__(self, state: dict) -> None:
        import importlib

        self.xp = importlib.import_module(state["xp"])
        self.device = state["device"]
        self.host = state["host"]
        self._budget = state["budget"]


class XpEngine:
    """Computes :class:`~secact.core.engine.BlockStats` for blocks of samples on an
    :class:`ArrayDevice`; one instance serves a whole run. Results come back to host memory.

    Parameters are those of :class:`~secact.core.engine.Engine` (``layout`` has no meaning
    here: every block runs dense on the device), plus ``device``. ``k`` fixes the permutations
    per product (default: from the device's memory budget, see :func:`choose_sizes`).
    """

    def __init__(
        self,
        model: RidgeModel,
        *,
        method: Method = "permutation",
        table: np.ndarray | None = None,
        offset: np.ndarray | None = None,
        dtype: str = "float64",
        device: ArrayDevice | None = None,
        k: int | None = None,
    ) -> None:
        self.dtype = check_engine_args(model, method, table, offset, dtype)
        self.model = model
        self.method = method
        self.table = table
        self.offset = None if offset is None else np.ascontiguousarray(offset, dtype=np.float64)
        self.device = device if device is not None else ArrayDevice()
        self.k = None if k is None else max(1, int(k))
        self._consts: dict[Any, dict[str, Any]] = {}
        #: ``(rows, k)`` of the last part run (for benchmarks and logs)
        self.last_sizes: tuple[int, int] | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_consts"] = {}  # device arrays stay where they are; a worker uploads its own
        return state

    # -- per-run constants on the device --------------------------------------------------------
    def _constants(self) -> dict[str, Any]:
        dev = self.device
        found = self._consts.get(dev.key)
        if found is None:
            tt = self.model.Tt
            found = {"Tt": dev.put(np.asarray(tt, dtype=np.float64))}
            found["Tt_products"] = found["Tt"] if self.dtype == "float64" else dev.put(tt.astype(self.dtype))
            found["se"] = dev.put(np.asarray(self.model.analytic_se, dtype=np.float64).reshape(1, -1))
            if self.offset is not None:
                found["offset"] = dev.put(self.offset.reshape(1, -1))
            if self.method == "permutation":
                # transposed (genes x permutations): a chunk's columns, read row by row, gather
                # the permuted copies of Tt side by side for one plain GEMM
                inv = inverse_permutation_table(self.table).astype(np.int32)
                found["inv_t"] = dev.put(np.ascontiguousarray(inv.T))
                found["table"] = dev.put(np.ascontiguousarray(self.table, dtype=np.int32))
            self._consts[dev.key] = found
        return found

    # -- public --------------------------------------------------------------------------------
    def run(self, block) -> BlockStats:
        """Statistics for one block (samples x overlap genes): NumPy arrays of samples x columns."""
        m = block.shape[0]
        p = self.model.n_proteins
        if m == 0:
            empty = np.empty((0, p))
            return BlockStats(empty, empty.copy(), empty.copy(), empty.copy())
        n_perm = self.table.shape[0] if self.method == "permutation" else 1
        nnz = int(getattr(block, "nnz", 0))  # SciPy or CuPy sparse; dense blocks have none
        itemsize = np.dtype(self.dtype).itemsize
        rows, k = choose_sizes(
            m, self.model.n_genes, p, n_perm, self.device.budget(), nnz=nnz, itemsize=itemsize
        )
        if self.k is not None:
            k = min(self.k, n_perm)
        parts: list[dict[str, np.ndarray]] = []
        with np.errstate(invalid="ignore", divide="ignore"), self.device.context():
            a = 0
            while a < m:
                b = min(a + rows, m)
                try:
                    parts.append(self._run_part(block[a:b], k))
                except self.device.oom:
                    self.device.release()
                    if k > 1:
                        k = max(1, k // 2)
                    elif rows > 1:
                        rows = max(1, rows // 2)
                    else:
                        raise
                    continue
                self.last_sizes = (b - a, k)
                tick(b - a)
                a = b
        out = {
            key: np.concatenate([part[key] for part in parts])
            for key in ("beta", "se", "zscore", "pvalue", "sigma")
        }
        sigma = out.pop("sigma")
        _warn_degenerate(sigma)
        if self.method == "permutation" and np.any((out["se"] == 0) & (sigma > 0)[:, None]):
            warnings.warn(
                "some permutation standard errors are 0; their z-scores are NaN.",
                RuntimeWarning,
                stacklevel=2,
            )
        return BlockStats(**out)

    # -- one part of a block, all on the device -------------------------------------------------
    def _run_part(self, part, k: int) -> dict[str, np.ndarray]:
        dev, xp = self.device, self.device.xp
        const = self._constants()
        a = dev.dense(part)
        n = a.shape[1]
        y = a - const["offset"] if self.offset is not None else a
        mu = xp.mean(y, axis=1, keepdims=True)
        centred = y - mu
        sigma = xp.sqrt(xp.sum(centred * centred, axis=1, keepdims=True) / (n - 1))
        scale = xp.max(xp.abs(a), axis=1, keepdims=True)
        if self.offset is not None and self.offset.size:
            scale = scale + float(np.abs(self.offset).max())
        sigma = xp.where(sigma <= NEAR_CONSTANT * scale, xp.zeros_like(sigma), sigma)
        good = sigma > 0
        del a, y, mu, scale
        z = centred / xp.where(good, sigma, xp.ones_like(sigma))
        del centred
        beta = xp.matmul(z, const["Tt"])
        nan = xp.full_like(beta, xp.nan)
        if self.method == "analytic":
            se = xp.where(good, xp.broadcast_to(const["se"], beta.shape), nan)
            beta = xp.where(good, beta, nan)
            zscore = beta / se
            pvalue = 2.0 * dev.ndtr(-xp.abs(zscore))
        else:
            beta, se, zscore, pvalue = self._permute(z, beta, good, nan, const, k)
        return {
            "beta": dev.to_host(beta),
            "se": dev.to_host(se),
            "zscore": dev.to_host(zscore),
            "pvalue": dev.to_host(pvalue),
            "sigma": dev.to_host(xp.reshape(sigma, (-1,))),
        }

    def _permute(self, z, beta, good, nan, const, k: int):
        xp = self.device.xp
        n = z.shape[1]
        p = beta.shape[1]
        n_perm = self.table.shape[0]
        tt = const["Tt_products"]
        m = z.shape[0]
        # gather the smaller side: permuted copies of Tt (n x p each) for blocks of many cells,
        # permuted copies of z (m x n each) for a few samples (bulk profiles, groups)
        gather_z = m < p
        order = const["table"] if gather_z else const["inv_t"]
        zc = z if self.dtype == "float64" else xp.astype(z, tt.dtype)
        absb = xp.abs(beta)
        s1 = xp.zeros_like(beta)
        s2 = xp.zeros_like(beta)
        cnt = xp.zeros_like(beta)
        for start in range(0, n_perm, k):
            stop = min(start + k, n_perm)
            kk = stop - start
            if gather_z:
                # row j*kk + i holds z[j, perm_i] (permutation i of the chunk): one GEMM with Tt
                idx = xp.reshape(order[start:stop, :], (-1,))
                copies = xp.reshape(xp.take(zc, idx, axis=1), (m * kk, n))
                products = xp.reshape(xp.matmul(copies, tt), (m, kk, p))
            else:
                # row h holds Tt[inv_b[h]] for each permutation b of the chunk, side by side
                # (beta_b = z @ Tt[inv_b]): one GEMM gives all kk permutations
                idx = xp.reshape(order[:, start:stop], (-1,))
                copies = xp.reshape(xp.take(tt, idx, axis=0), (n, kk * p))
                products = xp.reshape(xp.matmul(zc, copies), (m, kk, p))
            del copies
            for i in range(kk):  # fold in table order
                x = products[:, i, :]
                if x.dtype != s1.dtype:
                    x = xp.astype(x, s1.dtype)
                s1 = s1 + x
                s2 = s2 + x * x
                cnt = cnt + xp.astype(xp.abs(x) >= absb, s1.dtype)
            del products
        mean = s1 / n_perm
        var = s2 / n_perm - mean * mean
        se = xp.sqrt(xp.maximum(var, xp.zeros_like(var)))
        positive = se > 0
        zscore = xp.where(positive, (beta - mean) / xp.where(positive, se, xp.ones_like(se)), nan)
        pvalue = (cnt + 1.0) / (n_perm + 1.0)
        return (
            xp.where(good, beta, nan),
            xp.where(good, se, nan),
            xp.where(good, zscore, nan),
            xp.where(good, pvalue, nan),
        )


def _warn_degenerate(sigma: np.ndarray) -> None:
    bad = int((~(sigma > 0)).sum())
    if bad:
        warnings.warn(
            f"{bad} sample(s) are constant over the overlap genes (zero variance); their results are NaN.",
            RuntimeWarning,
            stacklevel=3,
        )
