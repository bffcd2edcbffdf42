"""Where inference runs: the ``backend`` rule and the engine it picks.

``backend="cpu"`` runs the Numba/BLAS :class:`~secact.core.engine.Engine`; ``"gpu"`` runs
:class:`~secact.core.xp_engine.XpEngine` on CuPy (:mod:`secact.core.gpu`); ``"auto"`` (the
default, ``secact.settings.backend``) picks the GPU when the data are already there — a CuPy
array, a CuPy sparse matrix (what ``rapids_singlecell.get.anndata_to_GPU`` makes), or a dask
array with CuPy chunks — and the CPU otherwise. Nothing here imports CuPy: device types are
recognised through ``fast_array_utils.types``, which needs no CuPy to import.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from fast_array_utils import types

from .._checks import is_gpu_array
from .._errors import ParamError
from .._settings import BACKENDS, settings
from .engine import Engine
from .ridge import RidgeModel

__all__ = ["GPU_EXTRA", "Backend", "GPUUnavailableError", "make_engine", "on_device", "resolve_backend"]

Backend = Literal["cpu", "gpu"]

#: what a user installs for the GPU backend
GPU_EXTRA = "pip install 'secact[gpu]'"


class GPUUnavailableError(ParamError):
    """``backend="gpu"`` was asked for where CuPy or a CUDA device is missing."""

    param = "backend"


def on_device(x: Any) -> bool:
    """Whether ``x`` lives on a GPU: a CuPy array or sparse matrix, or a dask array whose
    chunks are."""
    if isinstance(x, types.DaskArray):
        x = getattr(x, "_meta", None)
    return is_gpu_array(x)


def resolve_backend(backend: str | None, data: Any = None) -> Backend:
    """``"cpu"`` or ``"gpu"`` for a tool's ``backend`` argument and its expression matrix.

    ``None`` takes ``secact.settings.backend``. ``"gpu"`` (asked for, or chosen by ``"auto"``
    for device data) checks that CuPy and a device are there and raises
    :class:`GPUUnavailableError` naming the extra otherwise.
    """
    if backend is None:
        backend = settings.backend
    if backend not in BACKENDS:
        msg = f"backend must be one of {list(BACKENDS)}, got {backend!r}."
        raise ValueError(msg)
    if backend == "auto":
        backend = "gpu" if on_device(data) else "cpu"
    if backend == "gpu":
        from . import gpu

        gpu.require()
    return backend


def make_engine(
    backend: Backend,
    model: RidgeModel,
    *,
    method: str = "permutation",
    table: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    dtype: str = "float64",
):
    """The engine for ``backend``: :class:`Engine` on the CPU, :class:`XpEngine` on CuPy."""
    if backend == "cpu":
        return Engine(model, method=method, table=table, offset=offset, dtype=dtype)
    if backend == "gpu":
        from . import gpu

        return gpu.engine(model, method=method, table=table, offset=offset, dtype=dtype)
    msg = f"backend must be 'cpu' or 'gpu' here, got {backend!r}."
    raise ValueError(msg)
