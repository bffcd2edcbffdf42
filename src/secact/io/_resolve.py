"""The one input rule: an AnnData or an ``.h5ad`` path, plus ``layer`` / ``use_raw``.

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
* a path that does not exist: :class:`FileNotFoundError`; anything else: :class:`TypeError`.

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

__all__ = ["Resolved", "block_source", "resolve"]


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
        The file the values are read from (path inputs and backed AnnData), else ``None``.
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

    def __post_init__(self) -> None:
        self._reopen = self._file is not None

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
        """Whether the values are read from a file."""
        return self.path is not None

    @property
    def is_view(self) -> bool:
        return self.rows is not None or self.cols is not None

    def source(self, temp_dir: str | os.PathLike | None = None) -> BlockSource:
        """A block source over the matrix (see :func:`secact.io.block_source`).

        Where this input opened a file itself (paths, ``raw`` of backed objects), the source
        opens it again for each pass and closes it when the pass ends, so it outlives
        :meth:`close`.
        """
        opener = None
        if self._reopen:
            path, layer, use_raw = self.path, self.layer, self.use_raw

            @contextlib.contextmanager
            def opener():
                with h5py.File(path, "r") as f:
                    yield _element(f, os.fspath(path), layer, use_raw)

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
            st = os.stat(self.path)
            found.update(path=os.fspath(Path(self.path).resolve()), size=st.st_size, mtime_ns=st.st_mtime_ns)
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


def _element(f: h5py.File, where: str, layer: str | None, use_raw: bool):
    if use_raw:
        if "raw" not in f:
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
    return _ad_io().sparse_dataset(elem) if isinstance(elem, h5py.Group) else elem


def _check_choice(layer: str | None, use_raw: bool | None) -> None:
    if layer is not None and use_raw:
        raise ParamError("use either {layer=...} or {use_raw=True}, not both.")


def _resolve_path(path: Path, layer: str | None, use_raw: bool | None) -> Resolved:
    if not path.is_file():
        msg = f"no .h5ad file at {os.fspath(path)!r}."
        raise FileNotFoundError(msg)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        msg = f"{os.fspath(path)!r} is not a readable .h5ad (HDF5) file: {err}"
        raise ValueError(msg) from err
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
    obs = adata.obs
    return Resolved(
        matrix, obs, var, layer, bool(use_raw), adata=adata, path=path, rows=rows, cols=cols, _file=f
    )


def resolve(
    data: AnnData | str | os.PathLike, *, layer: str | None = None, use_raw: bool | None = None
) -> Resolved:
    """Resolve a tool's input (see the module docstring for the rules)."""
    import anndata as ad

    _check_choice(layer, use_raw)
    if isinstance(data, str | os.PathLike):
        return _resolve_path(Path(data).expanduser(), layer, use_raw)
    if isinstance(data, ad.AnnData):
        return _resolve_anndata(data, layer, use_raw)
    msg = f"expected an AnnData or a path to an .h5ad file, got {type(data).__name__}."
    raise TypeError(msg)


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
        An :class:`~anndata.AnnData` (in memory, backed, or a view of either), a path to
        an ``.h5ad`` file (opened read-only for each pass), a bare ``numpy`` /
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
    if isinstance(data, str | os.PathLike | ad.AnnData):
        with resolve(data, layer=layer, use_raw=bool(use_raw)) as res:
            return res.source(temp_dir)
    if layer is not None or use_raw:
        raise TypeError("`layer` and `use_raw` need an AnnData or an .h5ad path, not a bare matrix.")
    return matrix_source(data, temp_dir=temp_dir)
