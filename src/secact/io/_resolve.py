"""The one input rule: an AnnData, an ``.h5ad`` / ``.zarr`` path or a SOMA experiment, plus ``layer`` / ``use_raw``.

:func:`resolve` turns what a user passes to a tool into a :class:`Resolved` input: the
matrix object (in memory, backed, dask), the cells' ``obs``, the genes' ``var``, the view's
row and column positions and the file to close. Path inputs read only ``obs``, ``var`` and
the matrix's metadata; the values are read block by block later. Every tool resolves its
input here, so the rules (and their errors) are the same everywhere:

* ``use_raw=None`` follows scanpy: ``True`` when ``adata.raw`` exists and no ``layer`` is
  given;
* ``layer`` and ``use_raw=True`` together: :class:`ValueError`;
* a missing layer: :class:`KeyError` naming the layers there are;
* ``use_raw=True`` without ``raw``, or no ``X``: :class:`ValueError`;
* a path: a file is an ``.h5ad`` (HDF5), a folder a zarr store written by anndata
  (``adata.write_zarr``, zarr format 2 or 3); anything else there: :class:`ValueError`; a path that
  does not exist: :class:`FileNotFoundError`;
* lazy AnnData (``anndata.experimental.read_lazy``): the dask matrix runs through the dask source,
  ``obs`` / ``var`` (xarray) are read into pandas;
* a TileDB-SOMA ``Experiment`` or ``ExperimentAxisQuery``: :mod:`._soma` (``tiledbsoma`` is
  imported only then);
* anything else: :class:`TypeError`.

:func:`block_source` resolves an input and makes its :class:`~secact.io.BlockSource` (bare
matrices and sources are taken as they are).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import pandas as pd

from .._errors import ParamError
from ._blocks import BlockSource
from ._sources import matrix_source

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = ["Resolved", "block_source", "is_group", "is_soma", "open_store", "resolve"]


@dataclass(eq=False)
class Resolved:
    """A resolved expression input. Use as a context manager (closes any file it opened).

    Attributes
    ----------
    matrix
        The matrix object: numpy, scipy.sparse, dask array, ``h5py.Dataset`` or an anndata
        backed sparse dataset. For views, the *whole* underlying matrix (see ``rows``/``cols``).
    obs
        The cells' annotations (of the view, for views).
    var
        The genes' annotations of ``matrix`` (``raw.var`` with ``use_raw``).
    layer, use_raw
        What was chosen (``use_raw`` resolved).
    adata
        The AnnData results go to, or ``None`` for a path.
    path
        The file (``.h5ad``) or folder (``.zarr``) the values are read from (path inputs and
        backed AnnData), else ``None``.
    rows, cols
        Positions of a view's cells / genes in ``matrix`` (``None``: all).
    """

    matrix: Any
    obs: pd.DataFrame
    var: pd.DataFrame
    layer: str | None
    use_raw: bool
    adata: AnnData | None = None
    path: Path | None = None
    rows: Any = None
    cols: Any = None
    _file: h5py.File | None = field(default=None, repr=False)
    _reopen: bool = field(default=False, repr=False)
    _source: BlockSource | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._reopen = self._reopen or self._file is not None

    @property
    def obs_names(self) -> pd.Index:
        return self.obs.index

    @property
    def var_names(self) -> pd.Index:
        return self.var.index

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    @property
    def backed(self) -> bool:
        """Whether the values are read from a file (or a SOMA array)."""
        return self.path is not None or self._source is not None

    @property
    def is_view(self) -> bool:
        return self.rows is not None or self.cols is not None

    def source(self, temp_dir: str | os.PathLike | None = None) -> BlockSource:
        """A block source over the matrix (see :func:`secact.io.block_source`).

        Where this input opened a file itself (paths, ``raw`` of backed objects), the source
        opens it again for each pass and closes it when the pass ends, so it outlives
        :meth:`close`.
        """
        if self._source is not None:  # a source of its own (SOMA)
            return self._source
        opener = None
        if self._reopen:
            path, layer, use_raw = self.path, self.layer, self.use_raw

            @contextlib.contextmanager
            def opener():
                with open_store(path) as root:
                    yield _element(root, os.fspath(path), layer, use_raw)

        return matrix_source(
            self.matrix,
            obs_names=self.obs_names,
            var_names=self.var_names,
            rows=self.rows,
            cols=self.cols,
            temp_dir=temp_dir,
            opener=opener,
        )

    def files(self) -> list[Path]:
        """The files this input reads (an output must never be one of them)."""
        found = [self.path] if self.path is not None else []
        filename = getattr(self.adata, "filename", None) if self.adata is not None else None
        if filename is not None:
            found.append(Path(filename))
        return found

    def identity(self) -> dict:
        """What identifies the data of this input: its file (path, size, modification time),
        the shape and a hash of the cell names (a resumed run checks it)."""
        names = hashlib.sha256("\n".join(map(str, self.obs_names)).encode()).hexdigest()
        found: dict = {"shape": [self.n_obs, len(self.var)], "obs_names_sha256": names}
        if self.path is not None:
            st = os.stat(_stamp_file(Path(self.path)))
            found.update(path=os.fspath(Path(self.path).resolve()), size=st.st_size, mtime_ns=st.st_mtime_ns)
        if self._source is not None:
            found.update(getattr(self._source, "identity", {}))
        return found

    def in_memory_matrix(self):
        """The matrix restricted to the view's cells and genes (in-memory inputs only)."""
        if not self.is_view:
            return self.matrix
        m = self.matrix
        if self.rows is not None:
            m = m[self.rows]
        if self.cols is not None:
            m = m[:, self.cols]
        return m

    def close(self) -> None:
        """Close any file this input opened itself (nothing else is touched)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Resolved:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ad_io():
    import anndata as ad

    return ad.io


def _stamp_file(path: Path) -> Path:
    """The file whose size and modification time identify the data at ``path``: the file
    itself, or a zarr store's root metadata (rewritten when anndata writes the store again)."""
    if path.is_dir():
        for name in ("zarr.json", ".zattrs", ".zgroup"):
            if (path / name).is_file():
                return path / name
    return path


def is_group(node) -> bool:
    """Whether ``node`` is a group of an ``.h5ad`` (h5py) or ``.zarr`` (zarr) store."""
    if isinstance(node, h5py.Group):
        return True
    return type(node).__module__.startswith("zarr") and hasattr(node, "group_keys")


def _zarr_root(path: Path):
    """The root group of an anndata zarr store at ``path`` (a folder), read-only."""
    import zarr

    name = os.fspath(path)
    try:
        root = zarr.open_group(path, mode="r")
    except Exception as err:  # zarr raises several types for a folder that is no store
        msg = f"{name!r} is a folder but not a zarr store ({type(err).__name__}); pass an .h5ad file or a store written by adata.write_zarr()."
        raise ValueError(msg) from err
    keys = set(root.keys())
    if root.attrs.get("encoding-type") != "anndata" and not {"obs", "var"} <= keys:
        msg = f"{name!r} is a zarr store but not an AnnData (no obs/var); write one with adata.write_zarr({name!r})."
        raise ValueError(msg)
    return root


@contextlib.contextmanager
def open_store(path: str | os.PathLike):
    """The root group of an AnnData file, read-only: an ``.h5ad`` (HDF5 file, closed when the
    block ends) or a ``.zarr`` store (a folder). :class:`FileNotFoundError` when nothing is at
    ``path``, :class:`ValueError` when what is there is not an AnnData store."""
    path = Path(os.path.expanduser(os.fspath(path)))
    if path.is_dir():
        yield _zarr_root(path)
        return
    with _h5ad_file(path) as f:
        yield f


def _h5ad_file(path: Path) -> h5py.File:
    """The ``.h5ad`` file at ``path`` opened read-only (the caller closes it)."""
    if not path.is_file():
        msg = f"no .h5ad file or .zarr store at {os.fspath(path)!r}."
        raise FileNotFoundError(msg)
    try:
        return h5py.File(path, "r")
    except OSError as err:
        msg = f"{os.fspath(path)!r} is not a readable .h5ad (HDF5) file: {err}"
        raise ValueError(msg) from err


def _element(f, where: str, layer: str | None, use_raw: bool):
    if use_raw:
        if "raw" not in f or "X" not in f["raw"]:
            msg = "{use_raw=True} but {where} has no raw (adata.raw is None)"
            raise ParamError(msg + "; pass {use_raw=False} or a layer.", where=where)
        elem = f["raw/X"]
    elif layer is not None:
        have = list(f["layers"].keys()) if "layers" in f else []
        if layer not in have:
            msg = f"layer {layer!r} not found in {where}; available layers: {have}."
            raise KeyError(msg)
        elem = f["layers"][layer]
    else:
        if "X" not in f:
            msg = "{where} has no X; pass {layer=...} with the expression values."
            raise ParamError(msg, where=where)
        elem = f["X"]
    return _ad_io().sparse_dataset(elem) if is_group(elem) else elem


def _check_choice(layer: str | None, use_raw: bool | None) -> None:
    if layer is not None and use_raw:
        raise ParamError("use either {layer=...} or {use_raw=True}, not both.")


def _resolve_path(path: Path, layer: str | None, use_raw: bool | None) -> Resolved:
    if path.is_dir():  # a zarr store: nothing to close, each pass opens it again
        root = _zarr_root(path)
        if use_raw is None:
            use_raw = layer is None and "raw" in root and "X" in root["raw"]
        matrix = _element(root, os.fspath(path), layer, use_raw)
        io = _ad_io()
        obs = io.read_elem(root["obs"])
        var = io.read_elem(root["raw/var"] if use_raw else root["var"])
        return Resolved(matrix, obs, var, layer, bool(use_raw), path=path, _reopen=True)
    f = _h5ad_file(path)
    try:
        if use_raw is None:
            use_raw = layer is None and "raw" in f
        matrix = _element(f, os.fspath(path), layer, use_raw)
        io = _ad_io()
        obs = io.read_elem(f["obs"])
        var = io.read_elem(f["raw/var"] if use_raw else f["var"])
    except BaseException:
        f.close()
        raise
    return Resolved(matrix, obs, var, layer, bool(use_raw), path=path, _file=f)


def _resolve_anndata(adata: AnnData, layer: str | None, use_raw: bool | None) -> Resolved:
    if use_raw is None:
        use_raw = layer is None and adata.raw is not None
    root = adata._adata_ref if adata.is_view else adata
    rows = adata._oidx if adata.is_view else None
    cols = adata._vidx if adata.is_view else None
    path = Path(root.filename) if root.isbacked else None
    f = None
    if use_raw:
        if root.raw is None:
            raise ParamError("{use_raw=True} but adata.raw is None; pass {layer=...} or put the values in X.")
        cols = None  # raw keeps all of its genes in views
        var = root.raw.var
        if root.isbacked:  # adata.raw.X of a backed object would be read whole
            f = h5py.File(path, "r")
            matrix = _element(f, os.fspath(path), None, True)
        else:
            matrix = root.raw.X
    elif layer is not None:
        if layer not in root.layers:
            msg = f"layer {layer!r} not found; available layers: {list(root.layers.keys())}."
            raise KeyError(msg)
        matrix, var = root.layers[layer], adata.var
    else:
        matrix, var = root.X, adata.var
        if matrix is None:
            raise ParamError("adata.X is None; pass {layer=...} with the expression values.")
    obs = _in_memory_frame(adata.obs)
    return Resolved(
        matrix,
        obs,
        _in_memory_frame(var),
        layer,
        bool(use_raw),
        adata=adata,
        path=path,
        rows=rows,
        cols=cols,
        _file=f,
    )


def _in_memory_frame(frame) -> pd.DataFrame:
    """``obs`` / ``var`` as pandas: those of lazy AnnData (xarray-backed ``Dataset2D``) are read."""
    if isinstance(frame, pd.DataFrame):
        return frame
    to_memory = getattr(frame, "to_memory", None)
    if to_memory is None:
        msg = f"obs / var of type {type(frame).__name__} cannot be read into a pandas DataFrame."
        raise TypeError(msg)
    return to_memory()


def resolve(
    data: AnnData | str | os.PathLike,
    *,
    layer: str | None = None,
    use_raw: bool | None = None,
    measurement: str = "RNA",
) -> Resolved:
    """Resolve a tool's input (see the module docstring for the rules); ``measurement`` names
    the measurement of a SOMA experiment (a query has its own)."""
    import anndata as ad

    _check_choice(layer, use_raw)
    if isinstance(data, str | os.PathLike):
        return _resolve_path(Path(data).expanduser(), layer, use_raw)
    if isinstance(data, ad.AnnData):
        return _resolve_anndata(data, layer, use_raw)
    if is_soma(data):
        from ._soma import resolve_soma

        if use_raw:
            raise ParamError(
                "{use_raw=True} has no meaning for a SOMA experiment; pick its X layer with {layer=...}."
            )
        found = resolve_soma(data, measurement=measurement, layer=layer)
        return Resolved(found.source, found.obs, found.var, found.layer, False, _source=found.source)
    msg = (
        "expected an AnnData, a path to an .h5ad file or .zarr store, or a TileDB-SOMA Experiment "
        f"/ ExperimentAxisQuery, got {type(data).__name__}."
    )
    raise TypeError(msg)


def is_soma(data) -> bool:
    """Whether ``data`` is a TileDB-SOMA ``Experiment`` or ``ExperimentAxisQuery`` (recognised
    without importing ``tiledbsoma``)."""
    return type(data).__module__.split(".")[0] in ("tiledbsoma", "somacore") and hasattr(data, "obs")


def block_source(
    data,
    *,
    layer: str | None = None,
    use_raw: bool = False,
    temp_dir: str | os.PathLike | None = None,
) -> BlockSource:
    """Make a :class:`~secact.io.BlockSource` for ``data``.

    Parameters
    ----------
    data
        An :class:`~anndata.AnnData` (in memory, backed, lazy, or a view), a path to an
        ``.h5ad`` file or ``.zarr`` store (opened read-only for each pass), a TileDB-SOMA
        ``Experiment`` / ``ExperimentAxisQuery`` (its ``"RNA"`` measurement), a bare ``numpy`` /
        ``scipy.sparse`` / dask matrix (cells x genes; names ``"0"``, ``"1"``, ...), a
        backed matrix (``h5py.Dataset`` / anndata sparse dataset), or a :class:`~secact.io.BlockSource`.
    layer
        Read ``adata.layers[layer]`` (``layers/<layer>`` on disk) instead of ``X``.
    use_raw
        Read ``adata.raw.X`` with ``adata.raw.var_names``. Unlike the tools (which follow
        scanpy's rule), this low-level reader reads ``X`` unless told otherwise.
    temp_dir
        Directory for the temporary transpose of CSC matrices on disk (default:
        ``secact.settings.temp_dir``, else the system temporary directory).
    """
    import anndata as ad

    if isinstance(data, BlockSource):
        if layer is not None or use_raw:
            raise ValueError("`layer` / `use_raw` cannot be applied to an existing BlockSource.")
        return data
    if isinstance(data, str | os.PathLike | ad.AnnData) or is_soma(data):
        with resolve(data, layer=layer, use_raw=bool(use_raw)) as res:
            return res.source(temp_dir)
    if layer is not None or use_raw:
        raise TypeError("`layer` and `use_raw` need an AnnData or an .h5ad / .zarr path, not a bare matrix.")
    return matrix_source(data, temp_dir=temp_dir)
