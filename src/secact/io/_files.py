"""What a file is: ``.h5ad``, another HDF5 format, a text table, compressed or not.

:func:`check_h5ad` says, before anything is read, whether a path is an AnnData ``.h5ad``
file (or ``.zarr`` store) and, when it is not, what it is instead and how to convert it. The helpers are shared
with :mod:`secact.io._tables` (bulk profile tables).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

__all__ = ["check_h5ad", "check_input_file", "h5ad_shape", "head", "is_hdf5", "suffixes"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
TABLE_SUFFIXES = (".tsv", ".csv", ".txt", ".tab")
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}


def suffixes(path: str | os.PathLike) -> tuple[str, str]:
    """The format suffix and the compression suffix (``""`` if none) of ``path``, lower case."""
    found = [s.lower() for s in Path(path).suffixes]
    if found and found[-1] in COMPRESSIONS:
        return (found[-2] if len(found) > 1 else ""), found[-1]
    return (found[-1] if found else ""), ""


def head(path: str | os.PathLike, n: int = 4096) -> bytes:
    """The first ``n`` bytes of ``path``, decompressed for ``.gz``, ``.bz2`` and ``.xz``."""
    _, comp = suffixes(path)
    if not comp:
        with open(path, "rb") as fh:
            return fh.read(n)
    if comp == ".gz":
        import gzip as opener
    elif comp == ".bz2":
        import bz2 as opener
    else:
        import lzma as opener
    try:
        with opener.open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, EOFError) as err:
        msg = f"{os.fspath(path)!r} is not a readable {comp} file ({err})."
        raise ValueError(msg) from err


def is_hdf5(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the HDF5 signature (at 0, 512, 1024 or 2048: a user block)."""
    with open(path, "rb") as fh:
        for offset in (0, 512, 1024, 2048):
            fh.seek(offset)
            if fh.read(8) == HDF5_MAGIC:
                return True
    return False


def check_input_file(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` as a :class:`~pathlib.Path` when it is an existing file, else an error that says
    what it is (missing: :class:`FileNotFoundError`; a folder: :class:`IsADirectoryError`)."""
    path = Path(os.path.expanduser(os.fspath(path)))
    name = os.fspath(path)
    if not path.exists():
        msg = f"{what} {name!r} does not exist."
        raise FileNotFoundError(msg)
    if path.is_dir():
        if path.suffix.lower() == ".zarr":
            msg = (
                f"{what} {name!r} is a zarr store, not a file; an AnnData store is read by "
                "secact.tl.activity / `secact activity` as it is."
            )
        else:
            msg = f"{what} {name!r} is a directory, not a file."
        raise IsADirectoryError(msg)
    return path


def _zarr_metadata(folder: Path) -> bool:
    """Whether ``folder`` holds a zarr store's root metadata (format 2 or 3)."""
    return any((folder / name).is_file() for name in ("zarr.json", ".zgroup"))


def check_h5ad(path: str | os.PathLike, what: str = "input") -> Path:
    """``path`` when it is an AnnData ``.h5ad`` file or ``.zarr`` store, else an error that says
    what it is and how to convert it (a text table, another HDF5 format such as 10x or loom, a
    zarr store that is not an AnnData).

    Parameters
    ----------
    path
        The file.
    what
        What the file is for, in messages (``"input"``, ``"control"``).

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        No file at ``path`` (a folder that is no zarr store).
    ValueError
        A file that is not an ``.h5ad``, a zarr store that is not an AnnData.
    """
    folder = Path(os.path.expanduser(os.fspath(path)))
    if folder.is_dir() and (folder.suffix.lower() == ".zarr" or _zarr_metadata(folder)):
        from ._resolve import open_store

        with open_store(folder):  # ValueError unless a zarr store of an AnnData
            return folder
    path = check_input_file(path, what)
    name = os.fspath(path)
    fmt, _ = suffixes(path)
    if fmt in TABLE_SUFFIXES:
        msg = (
            f"{name!r} looks like a text table, not an AnnData .h5ad file; for a genes x samples "
            f"table use bulk inference: secact infer {name} -o PREFIX (in Python: secact.infer)."
        )
        raise ValueError(msg)
    if not is_hdf5(path):
        msg = f"{name!r} is not an AnnData .h5ad file (not HDF5); write one with adata.write_h5ad()."
        raise ValueError(msg)
    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
    except OSError as err:
        msg = f"{name!r} is an unreadable HDF5 file ({err})."
        raise ValueError(msg) from err
    if {"obs", "var"} <= keys:
        return path
    if {"row_attrs", "col_attrs"} & keys:  # loom (which has a /matrix too)
        hint = f"scanpy.read_loom({name!r}).write_h5ad('data.h5ad')"
    elif "matrix" in keys:
        hint = f"scanpy.read_10x_h5({name!r}).write_h5ad('data.h5ad')"
    else:
        hint = "its reader in scanpy/anndata, then adata.write_h5ad('data.h5ad')"
    msg = f"{name!r} is an HDF5 file but not an AnnData .h5ad (no obs/var); convert it first: {hint}"
    raise ValueError(msg)


def h5ad_shape(path: str | os.PathLike) -> tuple[int, int]:
    """Rows x columns of the ``X`` of an ``.h5ad`` file, read from its metadata."""
    with h5py.File(path, "r") as f:
        x = f["X"]
        shape = x.shape if isinstance(x, h5py.Dataset) else tuple(x.attrs["shape"])
    return int(shape[0]), int(shape[1])
