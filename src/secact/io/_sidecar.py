"""Write per-cell activity results to an ``.h5ad`` sidecar file, block by block.

The file is a regular AnnData ``.h5ad`` laid out as :mod:`secact._results` says: ``obs`` =
cells (with their annotations), ``var`` = proteins, ``X`` = z-scores and ``layers`` for the
other statistics (dense float64 or float32), ``uns`` = the run's entry. Results are written in row blocks straight into contiguous HDF5
datasets created up-front, so they are never held in memory as a whole.

The statistics are contiguous datasets allocated when the file is created (no fill); the HDF5
file is then closed and rows are written as plain bytes at their offsets (``os.pwrite``), by
this process or, through :class:`RowTarget`, by dask workers that see the same file. A failed
write (a full disk) is an ``OSError`` here, never an HDF5 crash.

The file is written under a temporary name in the target's directory
(``.<name>.partial-<pid>.h5ad``) and renamed atomically onto the target on
:meth:`SidecarWriter.close`, once every row was written exactly once. An interrupted or
failed run therefore never leaves a file that looks finished, and an existing file at the
target stays intact until the new one is complete.

The run's ``job`` (parameters, input identity, key) is recorded in the partial file's journal,
which :meth:`SidecarWriter._resume` checks before continuing an interrupted run, and in the
file itself (root attribute ``secact-job``), which :func:`reuse_finished` checks before
returning a finished file's results instead of computing them again.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from .._errors import ParamError
from .._results import clean_uns
from ._output import JOB_ATTR, clean_stale, partial_files, pid_alive, recorded_job

__all__ = ["RowTarget", "SidecarWriter", "WriteRows", "job_differences", "reuse_finished"]


def _pwrite_all(fd: int, arr: np.ndarray, offset: int) -> None:
    view = memoryview(arr).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


@dataclass(frozen=True)
class RowTarget:
    """Where each statistic's rows live in a partial sidecar file; picklable, so a dask worker
    can write its block straight into the file instead of sending it to the client.

    :meth:`write` returns ``False`` (the caller sends the rows instead) when the file is not
    this one: absent or another file on the worker's machine.
    """

    path: str
    identity: tuple[int, int]
    offsets: dict[str, int]
    row_bytes: int
    dtype: str

    def write(self, start: int, stats: Mapping[str, np.ndarray]) -> bool:
        """Write the rows of every statistic from ``start``; ``False`` if the file is not here."""
        with self.opened() as fd:
            if fd is None:
                return False
            for name in self.offsets:
                self.write_rows(fd, name, start, stats[name])
        return True

    @contextlib.contextmanager
    def opened(self):
        """The partial file open for writing, or ``None`` when it is absent or another file."""
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except OSError:
            yield None
            return
        try:
            st = os.fstat(fd)
            yield fd if (st.st_dev, st.st_ino) == self.identity else None
        finally:
            os.close(fd)

    def write_rows(self, fd: int, name: str, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` of statistic ``name`` from row ``start`` through ``fd`` (from :meth:`opened`)."""
        _pwrite_all(
            fd, np.ascontiguousarray(rows, dtype=self.dtype), self.offsets[name] + start * self.row_bytes
        )


_scratch = threading.local()


def _buffer(shape: tuple[int, int], dtype) -> np.ndarray:
    """A per-thread buffer reused from block to block (fresh pages cost more than the copy)."""
    buf = getattr(_scratch, "buffer", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = _scratch.buffer = np.empty(shape, dtype=dtype)
    return buf


@dataclass(frozen=True)
class WriteRows:
    """``job(block, start)``, with the rows written through ``target`` where the file is
    reachable (then ``None`` is returned), else returned as they are.

    A job with an ``each(block, start, buffer)`` method (``secact.core.pipeline.BlockJob``)
    hands over one statistic at a time in a reused buffer, which is written before the next.
    """

    job: Callable[[Any, int], Mapping[str, np.ndarray]]
    target: RowTarget

    def __call__(self, block, start: int = 0):
        with self.target.opened() as fd:
            if fd is None:
                return self.job(block, start)
            each = getattr(self.job, "each", None)
            if each is None:
                for name, rows in self.job(block, start).items():
                    self.target.write_rows(fd, name, start, rows)
            else:
                shape = (block.shape[0], self.target.row_bytes // np.dtype(self.target.dtype).itemsize)
                for name, rows in each(block, start, _buffer(shape, np.dtype(self.target.dtype))):
                    self.target.write_rows(fd, name, start, rows)
        return None


def _canonical(job: dict) -> dict:
    """``job`` as it reads back from JSON (tuples become lists, numbers stay numbers)."""
    return json.loads(json.dumps(job, sort_keys=True, default=str))


def job_differences(recorded: Mapping, job: Mapping, prefix: str = "") -> list[str]:
    """Where two jobs differ: dotted keys (``params.n_permutations``), with both values when
    they are short (``params.n_permutations: 30 there, 31 here``)."""
    found = []
    for key in sorted(set(recorded) | set(job), key=str):
        a, b = recorded.get(key), job.get(key)
        if a == b:
            continue
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += job_differences(a, b, f"{name}.")
        elif len(repr(a)) <= 40 and len(repr(b)) <= 40:
            found.append(f"{name}: {a!r} there, {b!r} here")
        else:
            found.append(name)
    return found


def reuse_finished(path: str | os.PathLike, job: Mapping, *, overwrite: bool = False) -> bool:
    """Whether the finished sidecar at ``path`` holds the results of ``job`` (``resume=True``
    on a finished output: return them instead of computing them again).

    ``False`` when there is no file at ``path``, or when ``overwrite`` allows replacing a file
    of another job. A file of another job (or one that records none) is otherwise refused with
    a :class:`~secact._errors.ParamError` (a :class:`ValueError`) naming what differs.
    """
    path = Path(path)
    if not path.exists():
        return False
    recorded = recorded_job(path)
    if recorded == _canonical(dict(job)):
        return True
    if overwrite:
        return False
    if recorded is None:
        differs = "it records no job: not a finished secact sidecar"
    else:
        differs = "it differs in " + "; ".join(job_differences(recorded, _canonical(dict(job))))
    msg = (
        "{out=} exists and holds the results of another run ({differs}); pass {overwrite=True} to "
        "compute them again and replace it (it stays intact until the new file is complete), or "
        "write them to another file."
    )
    raise ParamError(msg, out=os.fspath(path), differs=differs)


def _write_elem(group, key: str, value) -> None:
    import anndata as ad

    ad.io.write_elem(group, key, value)


class SidecarWriter:
    """Stream row blocks of results into an ``.h5ad`` file at ``path``.

    Parameters
    ----------
    path
        The target ``.h5ad`` file. Written under a temporary name next to it and renamed
        onto it by :meth:`close`.
    obs
        The cells (rows): their names, or a DataFrame of their annotations (written as
        ``obs``; when anndata cannot write its columns, only the names are kept, with a
        warning).
    var_names
        The proteins (columns).
    uns
        Stored as ``uns``: strings, numbers, bools, lists of strings / numbers, nested
        dicts, DataFrames. ``None`` values are omitted (h5ad cannot store ``None``; read an
        absent key as ``None``); lists come back as numpy arrays.
    layers, x
        The names of the statistics: ``x`` is stored as ``X``, the others as layers.
    dtype
        The stored value dtype.

    Notes
    -----
    Use as a context manager: leaving the block normally calls :meth:`close`, an exception
    calls :meth:`abort`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        obs: pd.Index | pd.DataFrame,
        var_names: pd.Index,
        *,
        uns: dict | None = None,
        layers: Sequence[str] = ("beta", "se", "pvalue"),
        x: str = "zscore",
        dtype=np.float64,
        job: Mapping[str, Any] | None = None,
        resume: bool = False,
    ):
        self.path = Path(path)
        obs = obs.copy() if isinstance(obs, pd.DataFrame) else pd.DataFrame(index=pd.Index(obs))
        obs_names = obs.index
        var_names = pd.Index(var_names)
        self.n_obs, self.n_vars = len(obs_names), len(var_names)
        if self.n_obs == 0 or self.n_vars == 0:
            raise ValueError(f"empty result ({self.n_obs} cells x {self.n_vars} proteins)")
        self.x = x
        self.layers = tuple(layers)
        if x in self.layers or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"statistic names must be distinct: x={x!r}, layers={self.layers}")
        self.dtype = np.dtype(dtype).newbyteorder("<")
        uns_clean = clean_uns(dict(uns or {}), "uns")
        self.tmp_path = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}.h5ad")
        self.journal_path = self.tmp_path.with_suffix(".journal")
        self.job = None if job is None else _canonical(dict(job))
        self._written = np.zeros(self.n_obs, dtype=bool)
        self._state = "open"
        self._fd: int | None = None
        self._journal: int | None = None
        self._file = None
        #: rows already written by an interrupted run that this one continues
        self.resumed_rows = 0
        self._done = 0  # rows [0, _done) written, in the journal
        try:
            offsets = self._resume(obs, var_names) if resume else None
            if offsets is None:
                clean_stale(self.path)
                try:
                    self._file = h5py.File(self.tmp_path, "w")
                    offsets = self._setup(obs, var_names, uns_clean)
                    self._file.close()  # extends the file to its full size
                except (OSError, RuntimeError) as err:
                    msg = f"could not create {os.fspath(self.path)!r} ({err}); is the disk full or the file over a size limit?"
                    raise OSError(msg) from err
            self._fd = os.open(self.tmp_path, os.O_WRONLY)
            if self.job is not None:
                self._journal = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                if not self.resumed_rows:
                    os.ftruncate(self._journal, 0)
                    os.write(self._journal, (json.dumps(self.job, sort_keys=True) + "\n").encode())
            st = os.fstat(self._fd)
            self.target = RowTarget(
                str(self.tmp_path.resolve()),
                (st.st_dev, st.st_ino),
                offsets,
                self.n_vars * self.dtype.itemsize,
                self.dtype.str,
            )
        except BaseException:
            self.abort()
            raise

    def _resume(self, obs: pd.DataFrame, var_names: pd.Index) -> dict[str, int] | None:
        """Take over the partial file of an interrupted run of the same job (see ``job``):
        returns the datasets' offsets, or ``None`` when there is nothing to resume."""
        if self.job is None:
            raise ValueError("resume=True needs the job's description (job=...)")
        found = []
        for pid, files in partial_files(self.path).items():
            names = {f.suffix: f for f in files}
            if pid != os.getpid() and not pid_alive(pid) and {".h5ad", ".journal"} <= set(names):
                found.append((names[".h5ad"], names[".journal"]))
        if not found:
            return None
        mismatches = []
        for data, journal in found:
            lines = journal.read_bytes().split(b"\n")
            try:
                recorded = json.loads(lines[0])
            except ValueError:
                continue
            if recorded != self.job:
                mismatches.append(job_differences(recorded, self.job))
                continue
            done = 0
            for line in lines[1:]:
                if line.strip().isdigit():
                    done = max(done, int(line))
            with h5py.File(data, "r") as f:
                offsets = {}
                for name in (self.x, *self.layers):
                    ds = f["X"] if name == self.x else f["layers"][name]
                    if ds.shape != (self.n_obs, self.n_vars) or ds.dtype != self.dtype:
                        raise ValueError(f"the partial file {data} does not hold this job's results")
                    offsets[name] = int(ds.id.get_offset())
            os.replace(data, self.tmp_path)
            os.replace(journal, self.journal_path)
            self._written[:done] = True
            self._done = self.resumed_rows = done
            return offsets
        msg = (
            f"cannot resume {os.fspath(self.path)!r}: the interrupted run left next to it was a different "
            f"job (it differs in {'; '.join(mismatches[0]) if mismatches else 'its journal'}). Run it again "
            "with the same data and parameters, or without resume=True to start afresh."
        )
        raise ValueError(msg)

    def _advance(self) -> None:
        """Record in the journal how many leading rows are complete."""
        rest = self._written[self._done :]
        done = self.n_obs if rest.all() else self._done + int(np.argmin(rest))
        if done != self._done:
            self._done = done
            if self._journal is not None:
                os.write(self._journal, f"{done}\n".encode())

    def _setup(self, obs: pd.DataFrame, var_names: pd.Index, uns: dict) -> dict[str, int]:
        f = self._file
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        if self.job is not None:  # a finished file says which run it is the result of
            f.attrs[JOB_ATTR] = json.dumps(self.job, sort_keys=True)
        obs = obs.set_axis(obs.index.astype(str))
        try:
            _write_elem(f, "obs", obs)
        except Exception as err:  # columns anndata cannot write: keep the names
            if "obs" in f:
                del f["obs"]
            warnings.warn(
                f"the cells' annotations could not be written to the sidecar ({err}); only their names are kept.",
                UserWarning,
                stacklevel=4,
            )
            _write_elem(f, "obs", pd.DataFrame(index=obs.index))
        _write_elem(f, "var", pd.DataFrame(index=var_names.astype(str)))
        for key in ("obsm", "varm", "obsp", "varp", "layers"):
            _write_elem(f, key, {})
        _write_elem(f, "uns", uns)
        # contiguous, as anndata writes dense arrays, and allocated now without fill: a block of
        # rows is one plain write at a fixed offset, and backed reads of rows stay cheap
        offsets = {}
        for name in (self.x, *self.layers):
            group, key = (f, "X") if name == self.x else (f["layers"], name)
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_layout(h5py.h5d.CONTIGUOUS)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            space = h5py.h5s.create_simple((self.n_obs, self.n_vars))
            dsid = h5py.h5d.create(group.id, key.encode(), h5py.h5t.py_create(self.dtype), space, dcpl=dcpl)
            ds = h5py.Dataset(dsid)
            ds.attrs["encoding-type"] = "array"
            ds.attrs["encoding-version"] = "0.2.0"
            offsets[name] = int(dsid.get_offset())
        return offsets

    def write(self, start: int, stop: int, stats: Mapping[str, np.ndarray] | None) -> None:
        """Write rows ``[start, stop)``; ``stats`` maps ``x`` and every layer to arrays, or is
        ``None`` for rows that a :class:`WriteRows` job already wrote into the file."""
        if self._state != "open":
            raise RuntimeError(f"the sidecar writer is {self._state}")
        start, stop = int(start), int(stop)
        if not 0 <= start < stop <= self.n_obs:
            raise ValueError(f"invalid row range [{start}, {stop}) for {self.n_obs} cells")
        if stats is None:
            self._mark(start, stop)
            return
        need = {self.x, *self.layers}
        if set(stats) != need:
            raise ValueError(
                f"stats must have exactly the keys {sorted(need)}; "
                f"missing {sorted(need - set(stats))}, unexpected {sorted(set(stats) - need)}"
            )
        self._check_unwritten(start, stop)
        shape = (stop - start, self.n_vars)
        arrays = {}
        for name in need:
            arr = np.asarray(stats[name])
            if arr.shape != shape:
                raise ValueError(f"stats[{name!r}] has shape {arr.shape}, expected {shape}")
            arrays[name] = arr
        for name, arr in arrays.items():
            arr = np.ascontiguousarray(arr, dtype=self.dtype)
            _pwrite_all(self._fd, arr, self.target.offsets[name] + start * self.target.row_bytes)
        self._written[start:stop] = True
        self._advance()

    def _check_unwritten(self, start: int, stop: int) -> None:
        if self._written[start:stop].any():
            first = start + int(np.argmax(self._written[start:stop]))
            raise ValueError(f"rows [{start}, {stop}) overlap rows already written (row {first})")

    def _mark(self, start: int, stop: int) -> None:
        self._check_unwritten(start, stop)
        self._written[start:stop] = True
        self._advance()

    def close(self) -> Path:
        """Check every row was written, finalise the file and move it to ``path``."""
        if self._state == "closed":
            return self.path
        if self._state != "open":
            raise RuntimeError(f"the sidecar writer is {self._state}")
        try:
            if not self._written.all():
                missing = np.flatnonzero(~self._written)
                raise ValueError(
                    f"{missing.size} of {self.n_obs} rows were never written (first: row {missing[0]}); "
                    f"no file written to {self.path}"
                )
            os.close(self._fd)
            self._fd = None
            os.replace(self.tmp_path, self.path)
            self._close_journal(remove=True)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        return self.path

    def abort(self, keep: bool = False) -> None:
        """Discard the partial file (the target, if it exists, is left untouched); with
        ``keep`` (an interrupted run with a journal) leave it for ``resume=True``."""
        if self._state == "closed":
            return
        self._state = "aborted"
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        keep = keep and self._journal is not None
        self._close_journal(remove=not keep)
        if not keep:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.tmp_path)

    def _close_journal(self, remove: bool) -> None:
        if self._journal is not None:
            with contextlib.suppress(OSError):
                os.close(self._journal)
            self._journal = None
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.journal_path)

    def __enter__(self) -> SidecarWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:  # an interrupted run (Ctrl-C) can be resumed; a failed one is discarded
            self.abort(keep=issubclass(exc_type, KeyboardInterrupt))
        return False

    def __repr__(self) -> str:
        return f"SidecarWriter({str(self.path)!r}, {self.n_obs} x {self.n_vars}, {self._state})"
