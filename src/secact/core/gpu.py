"""The GPU backend's one contact with CuPy (imported lazily, never by ``import secact``).

Everything that computes is :class:`~secact.core.xp_engine.XpEngine` (array-API operations,
checked against the CPU engine on NumPy and ``array_api_strict`` in CI); this module only
adds what CuPy alone can do: probing the device, moving blocks up (dense, CSR or CSC — sparse
blocks travel as values and indices and are densified on the device) and results down, the
normal CDF on the device, the memory budget and CuPy's out-of-memory error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .backend import GPU_EXTRA, GPUUnavailableError
from .xp_engine import ArrayDevice, XpEngine

__all__ = ["CupyDevice", "available", "engine", "require"]

#: the default budget's ceiling (the budget is the smaller of this and half the free memory)
DEFAULT_BUDGET = 4 * 2**30


def _import_cupy():
    try:
        import cupy
    except ImportError as err:
        msg = "{backend='gpu'} needs CuPy and a CUDA device, and CuPy is not installed: {extra} (CUDA 12)."
        raise GPUUnavailableError(msg, extra=GPU_EXTRA) from err
    return cupy


def require():
    """CuPy, after checking that a CUDA device is usable; :class:`GPUUnavailableError` otherwise."""
    cupy = _import_cupy()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError without a driver, among others
        msg = "{backend='gpu'} found CuPy but no usable CUDA device ({err}); use {backend='cpu'}."
        raise GPUUnavailableError(msg, err=err) from err
    if count < 1:
        raise GPUUnavailableError("{backend='gpu'} found CuPy but no CUDA device; use {backend='cpu'}.")
    return cupy


def available() -> bool:
    """Whether ``backend="gpu"`` can run here."""
    try:
        require()
    except GPUUnavailableError:
        return False
    return True


class CupyDevice(ArrayDevice):
    """One CUDA device for :class:`XpEngine`, through ``array_api_compat.cupy``.

    Pickles as its device number and budget only (a dask worker builds its own).
    """

    def __init__(self, device_id: int | None = None, *, budget: int | None = None) -> None:
        cupy = require()
        import array_api_compat.cupy as xp

        self.device_id = int(cupy.cuda.Device().id if device_id is None else device_id)
        super().__init__(xp, device=cupy.cuda.Device(self.device_id), budget=budget)
        self._cupy = cupy
        self.oom = (cupy.cuda.memory.OutOfMemoryError,)

    @property
    def key(self) -> Any:
        return ("cupy", self.device_id)

    def context(self):
        return self._cupy.cuda.Device(self.device_id)

    def budget(self) -> int:
        """``secact.settings.gpu_memory``, else the smaller of 4 GiB and half of the free
        device memory (the memory pool's cached blocks count as free)."""
        from .._settings import settings

        if self._budget is not None:
            return int(self._budget)
        if settings.gpu_memory is not None:
            return int(settings.gpu_memory)
        with self.context():
            free = self._cupy.cuda.Device(self.device_id).mem_info[0]
            free += self._cupy.get_default_memory_pool().free_bytes()
        return int(min(DEFAULT_BUDGET, free // 2))

    def release(self) -> None:
        """Free the memory pool's cached blocks (after an out-of-memory error, before a retry)."""
        self._cupy.get_default_memory_pool().free_all_blocks()

    def put(self, array: np.ndarray):
        with self.context():
            return self._cupy.asarray(np.ascontiguousarray(array))

    def dense(self, block):
        cupy = self._cupy
        with self.context():
            if sp.issparse(block):
                import cupyx.scipy.sparse as csp

                block = block.tocsr() if block.format not in ("csr", "csc") else block
                kind = csp.csr_matrix if block.format == "csr" else csp.csc_matrix
                upload = kind(
                    (
                        cupy.asarray(block.data, dtype=np.float64),
                        cupy.asarray(block.indices),
                        cupy.asarray(block.indptr),
                    ),
                    shape=block.shape,
                )
                return upload.toarray()
            if hasattr(block, "toarray") and not isinstance(block, np.ndarray):  # cupyx sparse
                return block.astype(np.float64).toarray()
            return cupy.ascontiguousarray(cupy.asarray(block, dtype=np.float64))

    def to_host(self, x) -> np.ndarray:
        return self._cupy.asnumpy(x)

    def ndtr(self, x):
        from cupyx.scipy.special import ndtr

        with self.context():
            return ndtr(x)

    def __getstate__(self) -> dict:
        return {"device_id": self.device_id, "budget": self._budget}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["device_id"], budget=state["budget"])


def engine(
    model, *, method="permutation", table=None, offset=None, dtype="float64", device_id=None
) -> XpEngine:
    """An :class:`XpEngine` on the current (or the given) CUDA device."""
    return XpEngine(
        model, method=method, table=table, offset=offset, dtype=dtype, device=CupyDevice(device_id)
    )
