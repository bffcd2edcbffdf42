"""Signature matrices: a registry of named signatures, a verified download cache and validation.

``CytoSig`` (4,881 genes x 43 cytokines) ships inside the package. ``SecAct`` (7,919 genes x
1,170 secreted proteins, 80 MB of text) is fetched on first use from the upstream repository,
pinned to a commit and verified by sha256, into the user cache directory; a folder named by
``$SECACT_DATA_DIR`` that holds ``SecAct.tsv.gz`` takes precedence. Parsing the text takes
seconds, so a parsed binary copy keyed by the file's sha256 is kept beside it and later loads
take a few tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from .._logging import hint, logger, quiet

__all__ = ["SIGNATURES", "SignatureSpec", "data_dir", "install", "signature"]


def _install_hint(spec) -> str:
    return (
        f"download {spec.url} where there is internet access and install it with "
        f"`secact fetch-signature {spec.name} --from {spec.filename}` (it checks the sha256), or "
        f"point the environment variable SECACT_DATA_DIR at a folder that holds it"
    )


@dataclass(frozen=True)
class SignatureSpec:
    """A named signature: where it comes from and what it looks like."""

    name: str
    filename: str
    sha256: str | None
    url: str | None
    shape: tuple[int, int]
    lambda_: float = 5e5
    description: str = ""

    @property
    def packaged(self) -> bool:
        return self.url is None


#: The signatures known by name: ``"SecAct"`` (downloaded once, cached) and ``"CytoSig"``
#: (ships with the package), each a ``SignatureSpec`` (file name, sha256, URL, shape).
SIGNATURES: dict[str, SignatureSpec] = {
    "SecAct": SignatureSpec(
        name="SecAct",
        filename="SecAct.tsv.gz",
        sha256="eda4d822132ce173f23e19104549de3c8894aa93a0bb4ec25810608c525b3f83",
        url=(
            "https://raw.githubusercontent.com/data2intelligence/SecAct/"
            "8d9ce8355b3c7c05fff28f4dc3d393747a9f93cc/inst/extdata/SecAct.tsv.gz"
        ),
        shape=(7919, 1170),
        description="SecAct R 1.1: 1,170 secreted proteins, spatial-transcriptomics derived.",
    ),
    "CytoSig": SignatureSpec(
        name="CytoSig",
        filename="CytoSig.tsv.gz",
        sha256=None,
        url=None,
        shape=(4881, 43),
        description="CytoSig 0.0.3 signature.centroid: 43 cytokines (ships with secact).",
    ),
}

_LOCK = threading.Lock()


def data_dir() -> Path:
    """The folder where downloaded signatures and parsed copies are kept.

    ``secact.settings.data_dir`` when set, else ``$SECACT_DATA_DIR`` when set, else the
    platform's user cache folder (``~/.cache/secact`` on Linux).
    """
    from .._settings import data_folder

    return data_folder()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(spec: SignatureSpec, *, progress: bool = False) -> Path:
    """Path of a verified copy of a downloadable signature, downloading it if needed."""
    folder = data_dir()
    target = folder / spec.filename
    if target.exists():
        return target
    import pooch

    logger.info("downloading the %s signature from %s to %s", spec.name, spec.url, folder)
    try:
        with quiet(pooch.get_logger()):  # pooch announces the download itself, whatever the verbosity
            path = Path(
                pooch.retrieve(
                    spec.url,
                    known_hash=f"sha256:{spec.sha256}",
                    fname=spec.filename,
                    path=folder,
                    progressbar=progress,
                )
            )
    except Exception as err:  # network errors come in many types (requests, OSError, ...)
        cause = err.__cause__ if err.__cause__ is not None else err
        msg = (
            f"could not download the {spec.name} signature ({spec.filename}, sha256 {spec.sha256}) from "
            f"{spec.url} into {folder} ({type(cause).__name__}). Offline: {_install_hint(spec)}."
        )
        raise OSError(msg) from err
    logger.info("%s signature downloaded and verified (sha256 %s...)", spec.name, spec.sha256[:12])
    return path


def install(name: str = "SecAct", source: str | os.PathLike | None = None, *, progress: bool = False) -> Path:
    """Put a downloadable signature into the data folder (:func:`data_dir`), verified by its
    sha256, so that secact works offline afterwards.

    Parameters
    ----------
    name
        A downloadable signature of :data:`SIGNATURES` (``"SecAct"``).
    source
        A copy of the file to install instead of downloading it (its sha256 is checked).
    progress
        Show a progress bar while downloading.

    Returns
    -------
    pathlib.Path
        The signature file in the data folder.
    """
    from .._errors import ParamError, param_error
    from ..io._atomic import atomic_path

    spec = SIGNATURES.get(name)
    if spec is None or spec.packaged:
        downloadable = [k for k, v in SIGNATURES.items() if not v.packaged]
        raise ParamError(
            "{name=} is not a downloadable signature; those are {known}.", name=name, known=downloadable
        )
    folder = data_dir()
    target = folder / spec.filename
    if source is not None:
        if not Path(source).is_file():
            raise param_error(FileNotFoundError, "{source=} is not a file.", source=os.fspath(source))
        digest = _sha256(Path(source))
        if digest != spec.sha256:
            msg = "{source=} has sha256 {digest:.16}..., not the pinned {spec.name} signature ({spec.sha256:.16}...)"
            raise ParamError(
                msg + "; use the file at {spec.url}", source=os.fspath(source), digest=digest, spec=spec
            )
        if target.exists() and _sha256(target) == spec.sha256:
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        except OSError as err:
            msg = f"cannot write {os.fspath(target)!r} ({err.strerror or err}); set SECACT_DATA_DIR to a writable folder."
            raise OSError(msg) from err
        logger.info("installed %s as %s (sha256 verified)", os.fspath(source), target)
        return target
    if target.exists():
        if _sha256(target) != spec.sha256:
            msg = (
                f"{os.fspath(target)!r} is not the pinned {spec.name} signature (sha256 differs); delete "
                f"it and run again, or {_install_hint(spec)}."
            )
            raise ValueError(msg)
        return target
    return _fetch(spec, progress=progress)


def _parsed_path(spec: SignatureSpec, folder: Path) -> Path:
    return folder / f"{Path(spec.filename).name.split('.')[0]}.{spec.sha256[:16]}.npz"


def _read_table(path: Path | str) -> pd.DataFrame:
    """Read a genes x proteins TSV (header of protein names, first column genes)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith((b"\x89HDF", b"PK\x03\x04")):
        msg = (
            f"{path} is a binary file (HDF5 / .h5ad or zip), not a signature table: a signature is a "
            "tab-separated genes x proteins table (.tsv or .tsv.gz). To compute activity of an .h5ad "
            "file, pass it as the data (secact.tl.activity(path, ...)), not as the signature."
        )
        raise ValueError(msg)
    try:
        frame = pd.read_csv(path, sep="\t", index_col=0, keep_default_na=False, na_values=["NA", "NaN", ""])
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        msg = f"{path} is not a readable signature table (tab-separated genes x proteins): {err}"
        raise ValueError(msg) from err
    frame.index = frame.index.astype(str)
    frame.columns = frame.columns.astype(str)
    return frame


def _load_downloaded(spec: SignatureSpec) -> pd.DataFrame:
    folder = data_dir()
    parsed = _parsed_path(spec, folder)
    if parsed.exists():
        hint("%s signature: reading the parsed copy %s", spec.name, parsed)
        with np.load(parsed, allow_pickle=False) as z:
            return pd.DataFrame(z["values"], index=pd.Index(z["genes"]), columns=pd.Index(z["proteins"]))
    path = _fetch(spec)
    digest = _sha256(path)
    if digest != spec.sha256:
        msg = (
            f"{path} has sha256 {digest}, not the expected {spec.sha256} of the pinned {spec.name} "
            f"signature. Delete it and let secact download it again, or {_install_hint(spec)}."
        )
        raise ValueError(msg)
    logger.info("parsing %s once; a binary copy is kept at %s", path, parsed)
    frame = _read_table(path)
    from ..io._atomic import atomic_path

    try:
        with atomic_path(parsed) as tmp:
            np.savez(
                tmp,
                values=frame.to_numpy(dtype=np.float64),
                genes=frame.index.to_numpy(dtype=str),
                proteins=frame.columns.to_numpy(dtype=str),
            )
    except OSError as err:  # a read-only cache is not fatal, only slower next time
        logger.warning("could not keep a parsed copy of %s (%s)", path, err)
    return frame


@lru_cache(maxsize=4)
def _load_named(name: str) -> pd.DataFrame:
    spec = SIGNATURES[name]
    if spec.packaged:
        frame = _read_table(files("secact.datasets").joinpath("data", spec.filename))
    else:
        frame = _load_downloaded(spec)
    frame = validate_signature(frame, name=name)
    frame.values.flags.writeable = False
    return frame


def validate_signature(frame: pd.DataFrame, *, name: str = "signature") -> pd.DataFrame:
    """Check a genes x proteins signature and return it as float64.

    Raises a ``ValueError`` for non-numeric or non-finite entries, duplicated gene or protein
    names, empty matrices and constant protein columns. Missing values are not imputed: a
    signature with NaN is an error (fill it explicitly, e.g. ``frame.fillna(0)``, if zeros are
    what is meant), because SecAct's scaling and grouping would turn one NaN into a NaN column.
    """
    if not isinstance(frame, pd.DataFrame):
        msg = f"{name} must be a pandas DataFrame (genes x proteins), got {type(frame).__name__}."
        raise TypeError(msg)
    if frame.shape[0] < 2 or frame.shape[1] < 1:
        msg = f"{name} has shape {frame.shape}; it needs at least 2 genes (rows) and 1 protein (column)."
        raise ValueError(msg)
    for axis, labels in (("gene", frame.index), ("protein", frame.columns)):
        dup = labels[labels.duplicated()]
        if len(dup):
            msg = f"{name} has {len(dup)} duplicated {axis} names, e.g. {list(dup[:5])}; make them unique."
            raise ValueError(msg)
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        msg = (
            f"{name} has non-numeric columns {non_numeric[:5]}; a signature is genes (rows) x "
            "proteins (columns) of numbers, with gene names as the index."
        )
        raise ValueError(msg)
    values = frame.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        cols = frame.columns[bad.any(axis=0)]
        msg = (
            f"{name} has {int(bad.sum())} missing or infinite values in proteins {list(cols[:5])}; "
            "SecAct has no rule for them: fill them (e.g. frame.fillna(0)) or drop those proteins."
        )
        raise ValueError(msg)
    const = values.std(axis=0) == 0
    if const.any():
        msg = f"{name} has constant protein columns {list(frame.columns[const][:5])}; they cannot be scaled."
        raise ValueError(msg)
    return pd.DataFrame(values, index=frame.index.astype(str), columns=frame.columns.astype(str))


def signature(sig: str | os.PathLike | pd.DataFrame = "SecAct") -> pd.DataFrame:
    """Load a signature matrix (genes x proteins).

    Parameters
    ----------
    sig
        ``"SecAct"`` (downloaded on first use and cached in the data folder,
        ``secact.settings.data_dir``, else ``$SECACT_DATA_DIR``, else the user cache), ``"CytoSig"``
        (ships with the package), a path to a tab-separated table (header of protein names,
        first column gene symbols), or a DataFrame (genes as index, proteins as columns).

    Returns
    -------
    pandas.DataFrame
        A new float64 DataFrame, genes x proteins.
    """
    return _signature(sig).copy()


def _signature(sig: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """Like :func:`signature` but returns the cached (read-only) frame for named signatures."""
    if isinstance(sig, pd.DataFrame):
        return validate_signature(sig)
    if isinstance(sig, str) and sig in SIGNATURES:
        with _LOCK:
            return _load_named(sig)
    path = Path(sig) if isinstance(sig, str | os.PathLike) else None
    if path is None:
        msg = f"signature must be a name, a path or a DataFrame, got {type(sig).__name__}."
        raise TypeError(msg)
    if not path.exists():
        names = ", ".join(repr(k) for k in SIGNATURES)
        msg = f"Unknown signature {str(sig)!r}: not one of {names} and no file at that path."
        raise ValueError(msg)
    return validate_signature(_read_table(path), name=str(path))
