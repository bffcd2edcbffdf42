"""``secact.settings``: the package's tunables in one place.

Every size, thread count and folder that used to be a module constant lives here, so a user
changes it once (``secact.settings.batch_size = 4096``) or for a block of code::

    with secact.settings.override(batch_size=512, progress=False):
        secact.tl.activity(adata)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from ._checks import check_positive_int

__all__ = ["BACKENDS", "Settings", "settings"]

#: where inference can run (see ``Settings.backend``)
BACKENDS = ("auto", "cpu", "gpu")


def _positive_int(name: str, value) -> int:
    return check_positive_int(value, f"settings.{name}")


@dataclass
class Settings:
    """Package-wide defaults. Assigning a value validates it.

    Attributes
    ----------
    batch_size
        Cells per block when streaming cells (activity passes, sidecar writes). Memory is
        bounded by the block, not by the data.
    chunk_bytes
        Memory target for one chunk of genes in :func:`secact.tl.differential` (bytes of
        values).
    csr_row_block
        Rows read at a time when a CSR matrix on disk is scanned for a chunk of genes.
    csc_chunk_nnz
        Most stored entries per column chunk when a CSC matrix on disk is transposed for a
        pass over cells (peak memory is about 50 bytes per entry).
    permutation_chunk_bytes
        Size of one gathered block of permuted responses in the dense permutation engine.
    n_jobs
        Threads for the compiled kernels and blocks in flight for local dask runs
        (``None``: all cores).
    max_in_flight
        Blocks computed at once on a ``dask.distributed`` cluster (``None``: twice the
        cluster's threads).
    progress
        Progress bars: ``None`` follows scanpy's verbosity (bars from 'info' up) when scanpy
        is imported, else shows them on terminals only; ``True``/``False`` force.
    data_dir
        Where signatures are cached (``None``: ``$SECACT_DATA_DIR``, else the user cache).
    temp_dir
        Where temporary files (on-disk CSC transposes) go (``None``: the system default).
    backend
        Where inference runs when a tool's ``backend`` is ``None``: ``"auto"`` (the GPU when
        the data are already on it — a CuPy array or matrix, or dask with CuPy chunks — else
        the CPU), ``"cpu"`` or ``"gpu"`` (CuPy; host data are uploaded block by block).
    gpu_memory
        Bytes of device memory one block may use on the GPU (``None``: the smaller of 4 GiB
        and half of the device's free memory). The number of permutations per product and,
        if needed, the rows per part are chosen to fit.
    tune
        How the sparse permutation kernel is chosen for this machine: ``True`` (measure the
        candidate variants once per machine, dtype and signature shape, a few seconds on first
        use, and keep the choice in ``data_dir``), ``False`` (no measurement: the rule from
        the cache sizes and the default dense/sparse crossover) or ``"rerun"`` (measure again
        on the next run and replace what was kept). The environment variable ``SECACT_TUNE``
        (``0``, ``1`` or ``rerun``) sets the starting value, e.g. for batch jobs.
    cache_sizes
        Force the data cache sizes the kernels are sized for (``None``: read from the machine):
        a dict with any of ``"l1d"``, ``"l2"``, ``"l3"`` (bytes or strings such as ``"48K"``,
        ``"2M"``), or a string ``"L1d/L2[/L3]"`` such as ``"32K/512K"``.
    """

    batch_size: int = 2048
    chunk_bytes: int = 512 * 2**20
    csr_row_block: int = 16384
    csc_chunk_nnz: int = 1 << 22
    permutation_chunk_bytes: int = 1 << 26
    n_jobs: int | None = None
    max_in_flight: int | None = None
    progress: bool | None = None
    data_dir: str | os.PathLike | None = None
    temp_dir: str | os.PathLike | None = None
    backend: str = "auto"
    gpu_memory: int | None = None
    tune: bool | str = True
    cache_sizes: dict | str | None = None

    def __setattr__(self, name: str, value) -> None:
        if name not in {f.name for f in fields(self)}:
            msg = f"secact.settings has no setting {name!r}; settings: {[f.name for f in fields(self)]}."
            raise AttributeError(msg)
        if name in ("batch_size", "chunk_bytes", "csr_row_block", "csc_chunk_nnz", "permutation_chunk_bytes"):
            value = _positive_int(name, value)
        elif name == "backend":
            if value not in BACKENDS:
                msg = f"settings.backend must be one of {list(BACKENDS)}, got {value!r}."
                raise ValueError(msg)
        elif name in ("n_jobs", "max_in_flight", "gpu_memory"):
            value = None if value is None else _positive_int(name, value)
        elif name == "progress":
            if value is not None and not isinstance(value, bool):
                msg = f"settings.progress must be None, True or False, got {value!r}."
                raise ValueError(msg)
        elif name == "tune":
            if value not in (True, False, "rerun"):
                msg = f"settings.tune must be True, False or 'rerun', got {value!r}."
                raise ValueError(msg)
        elif name == "cache_sizes" and value is not None:
            value = _cache_sizes(value)
        elif name in ("data_dir", "temp_dir") and value is not None:
            value = Path(value).expanduser()
        object.__setattr__(self, name, value)

    @property
    def threads(self) -> int:
        """Number of threads in effect (``n_jobs``, else every core of this process)."""
        if self.n_jobs is not None:
            return self.n_jobs
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)

    @contextlib.contextmanager
    def override(self, **values) -> Iterator[Settings]:
        """Set some values for the duration of a ``with`` block, then restore them."""
        old = {k: getattr(self, k) for k in values}
        try:
            for k, v in values.items():
                setattr(self, k, v)
            yield self
        finally:
            for k, v in old.items():
                object.__setattr__(self, k, v)

    def __repr__(self) -> str:
        body = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"secact.settings({body})"


def data_folder() -> Path:
    """The folder for kept files (signatures, the kernel tuning): ``settings.data_dir`` when set,
    else ``$SECACT_DATA_DIR`` when set, else the platform's user cache (``~/.cache/secact``)."""
    if settings.data_dir is not None:
        return Path(settings.data_dir)
    env = os.environ.get("SECACT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("secact"))


def _cache_sizes(value) -> dict[str, int]:
    from .core.machine import parse_size

    levels = ("l1d", "l2", "l3")
    if isinstance(value, str):
        parts = [p for p in value.split("/") if p.strip()]
        if not 1 <= len(parts) <= 3:
            msg = f"settings.cache_sizes: expected 'L1d/L2[/L3]' such as '32K/512K', got {value!r}."
            raise ValueError(msg)
        value = dict(zip(levels, parts, strict=False))
    if not isinstance(value, dict) or not value or set(value) - set(levels):
        msg = f"settings.cache_sizes must be None, 'L1d/L2[/L3]' or a dict with keys {levels}, got {value!r}."
        raise ValueError(msg)
    return {k: parse_size(v) for k, v in value.items()}


settings = Settings()
_tune_env = os.environ.get("SECACT_TUNE", "").strip().lower()
if _tune_env:
    _tune = {"0": False, "false": False, "1": True, "true": True, "rerun": "rerun"}.get(_tune_env)
    if _tune is None:
        msg = f"$SECACT_TUNE must be 0, 1 or rerun, got {os.environ['SECACT_TUNE']!r}; unset it or fix it."
        raise ValueError(msg)
    settings.tune = _tune
