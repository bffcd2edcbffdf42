"""Checks of an output path, made before any computation: nothing is lost, nothing fails late.

:func:`check_output` refuses an ``out`` that is (after ``~`` expansion and symlinks) one of the
files the call reads, an existing file unless ``overwrite=True``, a directory, a path whose
folder is missing or not writable, and a disk without room for the estimated result. The
errors name the user's path and the fix.

:func:`clean_stale` removes the partial files (``.<name>.partial-<pid>.*``) that a killed
process left next to an output.

:func:`recorded_job` reads the job a finished sidecar records (the root attribute
:data:`JOB_ATTR`), so that ``resume=True`` on a finished output can return its results.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
from collections.abc import Iterable
from pathlib import Path

import h5py

from .._errors import ParamError, param_error

__all__ = ["JOB_ATTR", "check_output", "clean_stale", "partial_files", "pid_alive", "recorded_job"]

#: root attribute of a sidecar ``.h5ad`` holding the job that wrote it (JSON: parameters, input
#: identity, key); written with the file, so a finished file says which run it is the result of
JOB_ATTR = "secact-job"

#: free space asked for beyond the estimate (HDF5 metadata, obs annotations)
MARGIN = 1.05
_MiB = 2**20


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output(
    out: str | os.PathLike,
    *,
    reads: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    nbytes: int = 0,
    resume: bool = False,
) -> Path:
    """Validate ``out`` before computing; returns it as an absolute path (``~`` expanded).

    Parameters
    ----------
    out
        The output file.
    reads
        Files the call reads (the input ``.h5ad``, a backed object's file); ``None`` entries
        are ignored.
    overwrite
        Whether an existing ``out`` may be replaced (it stays intact until the new file is
        complete).
    nbytes
        Estimated size of the output: the folder's free space must exceed it (with a 5%
        margin).
    resume
        A resumed run writes into its partial file, whose size is already on disk. An existing
        ``out`` is then allowed when it is a finished sidecar (it records its job): the tool
        reuses it if the job is the same, and refuses it otherwise.
    """
    if not isinstance(out, str | os.PathLike) or not os.fspath(out):
        msg = f"out must be a file path, got {out!r}."
        raise TypeError(msg)
    path = Path(os.path.expanduser(os.fspath(out))).absolute()
    for src in reads:
        if src is not None and _same_file(path, Path(os.path.expanduser(os.fspath(src)))):
            msg = "{out=} is the input file {src!r}: writing results there would destroy the data. Choose another path."
            raise ParamError(msg, out=os.fspath(out), src=os.fspath(src))
    if path.suffix.lower() == ".zarr":  # results are written as .h5ad only (inputs may be .zarr)
        msg = "{out=}: results are written as an .h5ad file; pass a path such as {example!r}."
        raise ParamError(msg, out=os.fspath(out), example=os.fspath(path.with_suffix(".h5ad")))
    if path.is_dir():
        msg = "{out=} is a directory; give a file path such as {example!r}."
        example = os.fspath(path / "results.h5ad")
        raise param_error(IsADirectoryError, msg, out=os.fspath(out), example=example)
    if path.exists() and not overwrite and not (resume and recorded_job(path) is not None):
        what = " and is not a finished secact result ({resume=True} reuses only those)" if resume else ""
        msg = "{out=} exists" + what + "; pass {overwrite=True} to replace it"
        msg += " (it stays intact until the new file is complete)."
        raise param_error(FileExistsError, msg, out=os.fspath(out))
    folder = path.parent
    if not folder.is_dir():
        msg = "the folder of {out=} does not exist: {folder!r}; create it first."
        raise param_error(FileNotFoundError, msg, out=os.fspath(out), folder=os.fspath(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        msg = "the folder of {out=} is not writable: {folder!r}."
        raise param_error(PermissionError, msg, out=os.fspath(out), folder=os.fspath(folder))
    if nbytes and not resume:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and limit < int(nbytes * MARGIN):
            msg = (
                "{out=} would be about {mib:,.0f} MiB, over this process's file size limit of "
                "{limit:,.0f} MiB (ulimit -f). Raise the limit, or keep fewer statistics ({stats=...}) "
                "in float32 ({dtype='float32'})."
            )
            values = {"mib": nbytes * MARGIN / _MiB, "limit": limit / _MiB}
            raise param_error(OSError, msg, out=os.fspath(out), **values)
        free = shutil.disk_usage(folder).free
        need = int(nbytes * MARGIN)
        if free < need:
            msg = (
                "not enough free space for {out=}: the results need about {need:,.0f} MiB, {folder!r} "
                "has {free:,.0f} MiB free. Free space, write elsewhere, or keep fewer statistics "
                "({stats=...}) in float32 ({dtype='float32'})."
            )
            values = {"need": need / _MiB, "free": free / _MiB, "folder": os.fspath(folder)}
            raise param_error(OSError, msg, out=os.fspath(out), **values)
    return path


def recorded_job(path: str | os.PathLike) -> dict | None:
    """The job a finished sidecar at ``path`` records (see :data:`JOB_ATTR`), or ``None`` when
    ``path`` is no such file (not HDF5, unreadable, written by something else)."""
    try:
        with h5py.File(path, "r") as f:
            text = f.attrs.get(JOB_ATTR)
    except (OSError, ValueError):
        return None
    if isinstance(text, bytes):
        text = text.decode()
    try:
        job = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return job if isinstance(job, dict) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def partial_files(path: Path) -> dict[int, list[Path]]:
    """Partial files of ``path`` by the id of the process that wrote them."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.partial-(\d+)(\..+)?$")
    found: dict[int, list[Path]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            m = pattern.match(entry.name)
            if m:
                found.setdefault(int(m.group(1)), []).append(Path(entry.path))
    return found


def clean_stale(path: Path, keep: Iterable[Path] = ()) -> list[Path]:
    """Remove partial files of ``path`` left by processes that no longer run; returns them."""
    keep = {Path(k) for k in keep}
    removed = []
    for pid, files in partial_files(path).items():
        if pid == os.getpid() or pid_alive(pid):
            continue
        for f in files:
            if f in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
                removed.append(f)
    return removed
