"""The ``secact`` command (also ``python -m secact``).

Commands: ``activity`` (AnnData ``.h5ad`` files, per cell or per group, out of core),
``infer`` (bulk genes x samples tables), ``differential`` (Wilcoxon tests of groups against a
reference), ``fetch-signature`` (the SecAct signature into the cache) and ``example`` (an
offline demonstration).

Mistakes a user can fix (a missing or wrongly formatted file, a missing column, a bad
parameter) end the command with exit status 2 and one line ``secact: error: ...`` on stderr;
``-vv`` adds the traceback. Anything else is a bug and shows its traceback. Results go to
files, a one-line summary to stdout; log lines (timings, files written) and progress bars go
to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import re
import secrets
import shutil
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import pandas as pd

#: exit status of a mistake the user can fix (argparse uses 2 for its usage errors too)
USER_ERROR = 2

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_TABLE_SUFFIXES = (".tsv", ".csv", ".txt", ".tab")
_COMPRESSED = (".gz", ".bz2", ".xz")


class UserError(Exception):
    """A problem with the command's input that the user can fix; printed as one line."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=min(100, shutil.get_terminal_size().columns))


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line ``secact: error: ...`` naming the command's ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"secact: error: {message} (see '{self.prog} --help')\n")


# ----------------------------------------------------------------------------------------------
# argument types
# ----------------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0 (e.g. 1e5), got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


_STATS = ("beta", "se", "zscore", "pvalue")


def _stats(text: str) -> list[str]:
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in wanted if s not in _STATS]
    if bad or not wanted:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(_STATS)}, got {text!r}"
        )
    return wanted


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------
def _suffixes(path: Path) -> tuple[str, str]:
    """The format suffix and the compression suffix ('' if none) of ``path``, lower case."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        return (suffixes[-2] if len(suffixes) > 1 else ""), suffixes[-1]
    return (suffixes[-1] if suffixes else ""), ""


def _head(path: Path, n: int = 4096) -> bytes:
    """The first ``n`` bytes of ``path`` (decompressed for .gz/.bz2/.xz)."""
    _, comp = _suffixes(path)
    if comp == ".gz":
        import gzip as opener
    elif comp == ".bz2":
        import bz2 as opener
    elif comp == ".xz":
        import lzma as opener
    else:
        with open(path, "rb") as fh:
            return fh.read(n)
    try:
        with opener.open(path, "rb") as fh:
            return fh.read(n)
    except (OSError, EOFError) as err:
        raise UserError(f"{os.fspath(path)!r} is not a readable {comp} file ({err}).") from err


def _existing_file(path: Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"{what} {os.fspath(path)!r} does not exist.")
    if path.is_dir():
        if path.suffix.lower() == ".zarr":
            raise UserError(
                f"{os.fspath(path)!r} is a zarr store; secact reads .h5ad files: convert it with "
                "anndata.read_zarr(path).write_h5ad('data.h5ad')."
            )
        raise UserError(f"{what} {os.fspath(path)!r} is a directory, not a file.")


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        for offset in (0, 512, 1024, 2048):  # HDF5 allows a user block before the signature
            fh.seek(offset)
            if fh.read(8) == _HDF5_MAGIC:
                return True
    return False


def _check_h5ad(path: Path) -> None:
    """``path`` is an AnnData ``.h5ad`` file, or a one-line error saying what it is instead."""
    _existing_file(path, "input")
    name = os.fspath(path)
    fmt, _ = _suffixes(path)
    if fmt in _TABLE_SUFFIXES:
        raise UserError(
            f"{name!r} looks like a text table, not an AnnData .h5ad file; for a genes x samples "
            f"table use: secact infer {name} -o PREFIX"
        )
    if not _is_hdf5(path):
        raise UserError(
            f"{name!r} is not an AnnData .h5ad file (not HDF5); write one with adata.write_h5ad()."
        )
    import h5py

    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
    except OSError as err:
        raise UserError(f"{name!r} is an unreadable HDF5 file ({err}).") from err
    if {"obs", "var"} <= keys:
        return
    if "matrix" in keys:
        hint = f"scanpy.read_10x_h5({name!r}).write_h5ad('data.h5ad')"
    elif {"matrix", "row_attrs", "col_attrs"} & keys:
        hint = f"scanpy.read_loom({name!r}).write_h5ad('data.h5ad')"
    else:
        hint = "its reader in scanpy/anndata, then adata.write_h5ad('data.h5ad')"
    raise UserError(
        f"{name!r} is an HDF5 file but not an AnnData .h5ad (no obs/var); convert it first: {hint}"
    )


def _check_output(out: Path, *, kinds: Sequence[str], overwrite: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse an output before anything is computed: a wrong file type here, the rest (the
    input itself, a directory, a missing folder, an existing file without ``--overwrite``) by
    :func:`secact.io.check_output`, as the tools do."""
    from secact.io import check_output

    fmt, _ = _suffixes(out)
    if fmt not in kinds:
        allowed = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
        raise UserError(f"-o {os.fspath(out)!r}: the output must be a {allowed} file.")
    check_output(out, reads=inputs, overwrite=overwrite)


@contextlib.contextmanager
def _atomic(out: Path) -> Iterator[Path]:
    """A path beside ``out`` to write to (not created: the writer creates it with the usual
    permissions), which replaces ``out`` once written completely."""
    tmp = out.parent / f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.partial"
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _shape_of(path: Path) -> tuple[int, int]:
    """Rows x columns of the ``X`` of an .h5ad file, read from its metadata."""
    import h5py

    with h5py.File(path, "r") as f:
        x = f["X"]
        shape = x.shape if isinstance(x, h5py.Dataset) else tuple(x.attrs["shape"])
    return int(shape[0]), int(shape[1])


# ----------------------------------------------------------------------------------------------
# tables (secact infer)
# ----------------------------------------------------------------------------------------------
def _separator(first_line: str, fmt: str) -> str:
    if fmt == ".csv":
        return ","
    if fmt in (".tsv", ".tab"):
        return "\t"
    if "\t" in first_line:
        return "\t"
    if "," in first_line:
        return ","
    return r"\s+"  # R's write.table with sep=" " (header one field short)


def read_profile(path: str | os.PathLike) -> pd.DataFrame:
    """A genes x samples table (TSV, CSV or whitespace separated, optionally compressed),
    with clear errors for binary files, empty tables and duplicated sample names."""
    import pandas as pd

    path = Path(path)
    name = os.fspath(path)
    _existing_file(path, "profile")
    fmt, _ = _suffixes(path)
    if fmt in (".h5ad", ".h5", ".hdf5", ".loom", ".zarr") or _head(path, 8).startswith(_HDF5_MAGIC):
        raise UserError(
            f"{name!r} is an AnnData/HDF5 file; secact infer reads genes x samples text tables "
            f"(TSV/CSV). For single-cell or spatial data use: secact activity {name} -o OUT.h5ad"
        )
    head = _head(path)
    if b"\x00" in head:
        raise UserError(
            f"{name!r} is a binary file, not a text table; secact infer reads genes x samples "
            "tables (TSV/CSV, optionally .gz), and secact activity reads .h5ad files."
        )
    lines = [ln for ln in head.decode("utf-8", errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise UserError(
            f"{name!r} is empty; expected a genes x samples table with a header row of sample names."
        )
    sep = _separator(lines[0], fmt)
    try:
        frame = pd.read_csv(path, sep=sep, index_col=0, engine="python")
        header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, engine="python", index_col=None)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise UserError(f"{name!r} is not a readable text table ({' '.join(str(err).split())}).") from err
    except pd.errors.EmptyDataError as err:
        raise UserError(
            f"{name!r} is empty; expected a genes x samples table with a header row of sample names."
        ) from err
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise UserError(
            f"{name!r} has {frame.shape[0]} gene row(s) and {frame.shape[1]} sample column(s); "
            "expected genes as rows (first column: gene symbols) and one column per sample."
        )
    # pandas renames duplicated header names (a, a.1): compare with the header as written
    samples = [str(v) for v in header.iloc[0].tolist()][-frame.shape[1] :]
    seen, dup = set(), []
    for s in samples:
        if s in seen and s not in dup:
            dup.append(s)
        seen.add(s)
    if dup:
        raise UserError(f"{name!r} has duplicated sample names {dup[:5]}; make the column names unique.")
    return frame


# ----------------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------------
def _example(args: argparse.Namespace) -> int:
    import numpy as np

    import secact

    t0 = time.perf_counter()
    adata = secact.datasets.simulate(n_cells=args.n_cells, seed=args.seed)
    planted = adata.uns["simulate"]["planted"]
    print(
        f"simulated {adata.n_obs} cells x {adata.n_vars} genes, groups: "
        + ", ".join(f"{g} ({n})" for g, n in adata.obs["group"].value_counts(sort=False).items())
    )
    secact.tl.activity(
        adata,
        "CytoSig",
        groupby="group",
        reference="control",
        n_permutations=args.n_permutations,
        progress=False,
    )
    result = secact.get.activity(adata, level="groups")
    z = result.to_df()
    print(f"\nCytoSig activity per group vs control (z-scores, {args.n_permutations} permutations):")
    ranks = []
    for group, row in z.iterrows():
        if group == "control":
            continue
        top = row.sort_values(ascending=False)
        target = planted.get(group)
        rank = int(np.flatnonzero(top.index == target)[0]) + 1 if target in top.index else None
        ranks.append(rank)
        head = ", ".join(f"{p} {v:+.1f}" for p, v in top.head(args.top).items())
        print(f"  {group:<18} top: {head}")
        if target is not None:
            print(f"  {'':<18} planted {target}: rank {rank} of {len(top)} (z = {row[target]:+.1f})")
    out = Path(args.out)
    result.uns["planted"] = dict(planted)
    result.write_h5ad(out)
    hits = sum(r == 1 for r in ranks if r is not None)
    print(
        f"\nplanted cytokine ranked first in {hits} of {len(ranks)} groups; wrote {out} ({time.perf_counter() - t0:.1f} s)"
    )
    return 0 if hits == len(ranks) else 1


def _infer(args: argparse.Namespace) -> int:
    import secact

    t0 = time.perf_counter()
    prefix = Path(args.output)
    if not prefix.parent.is_dir():
        raise UserError(f"the folder of -o {args.output!r} does not exist; create it first.")
    profile = read_profile(args.profile)
    res = secact.infer(
        profile,
        args.signature,
        differential=args.differential,
        method=args.method,
        n_permutations=args.n_permutations,
        rng=args.rng,
        seed=args.seed,
        group_signatures=not args.no_grouping,
    )
    for key in ("beta", "se", "zscore", "pvalue"):
        getattr(res, key).to_csv(f"{prefix}.{key}.tsv", sep="\t")
    print(
        f"wrote {prefix}.{{beta,se,zscore,pvalue}}.tsv ({res.beta.shape[0]:,} proteins x "
        f"{res.beta.shape[1]:,} sample(s)) in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _activity(args: argparse.Namespace) -> int:
    import secact

    t0 = time.perf_counter()
    src, out = Path(args.input), Path(args.output)
    _check_h5ad(src)
    control = None
    if args.control is not None:
        control = Path(args.control)
        _check_h5ad(control)
    _check_output(
        out, kinds=(".h5ad",), overwrite=args.overwrite, inputs=[src, *([control] if control else [])]
    )
    if args.layer is not None and args.use_raw:
        raise UserError("use either --layer or --use-raw, not both.")
    if args.resume and args.groupby is not None:
        raise UserError(
            "--resume continues an interrupted cell-level run; a --groupby run is short: drop --resume."
        )
    extra = {"resume": args.resume, "overwrite": args.overwrite}
    reference = args.reference
    if reference is not None and args.groupby is None:
        column, eq, value = reference.partition("=")
        if not eq or not column or not value:
            raise UserError(
                f"--reference {reference!r}: per cell the reference is COLUMN=VALUE of obs "
                "(e.g. condition=control); with --groupby it is a group name."
            )
        reference = (column, value)
    kwargs = {
        "groupby": args.groupby,
        "reference": reference,
        "layer": args.layer,
        "use_raw": args.use_raw,
        "gene_symbols": args.gene_symbols,
        "organism": args.organism,
        "input": args.input_kind,
        "flavor": args.flavor,
        "control": control,
        "scale_factor": args.scale_factor,
        "method": args.method,
        "n_permutations": args.n_permutations,
        "rng": args.rng,
        "seed": args.seed,
        "group_signatures": not args.no_grouping,
        "stats": args.stats,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "progress": False if args.quiet else None,
        **extra,
    }
    if args.groupby is not None:
        result = secact.tl.activity(src, args.signature, out=out, **kwargs)
        n_rows, n_cols = result.shape
        what = f"{n_rows:,} groups of {args.groupby!r}"
    else:
        secact.tl.activity(src, args.signature, out=out, **kwargs)
        n_rows, n_cols = _shape_of(out)
        what = f"{n_rows:,} cells"
    stats = ", ".join(args.stats or _STATS)
    print(f"done in {time.perf_counter() - t0:.1f} s: {out} holds {what} x {n_cols:,} proteins ({stats})")
    return 0


def _differential(args: argparse.Namespace) -> int:
    import secact

    t0 = time.perf_counter()
    src, out = Path(args.input), Path(args.output)
    _check_h5ad(src)
    _check_output(out, kinds=(".tsv", ".csv", ".txt"), overwrite=args.overwrite, inputs=[src])
    if args.layer is not None and args.use_raw:
        raise UserError("use either --layer or --use-raw, not both.")
    groups = "all" if args.groups is None else [g.strip() for g in args.groups.split(",") if g.strip()]
    result = secact.tl.differential(
        src,
        args.groupby,
        reference=args.reference,
        groups=groups,
        layer=args.layer,
        use_raw=args.use_raw,
        data=args.data,
        progress=False if args.quiet else None,
    )
    table = secact.get.differential(result)
    fmt, comp = _suffixes(out)
    with _atomic(out) as tmp:
        table.to_csv(
            tmp,
            sep="," if fmt == ".csv" else "\t",
            index=False,
            compression={".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}.get(comp),
        )
    n_groups = table["group"].nunique()
    print(
        f"wrote {out}: {len(table):,} rows ({n_groups} group(s) vs {args.reference} x "
        f"{len(table) // max(n_groups, 1):,} genes) in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _download(spec, folder: Path, *, progress: bool) -> Path:
    """Download a signature with pooch into ``folder``, verified by its sha256."""
    import pooch

    from secact._logging import logger, quiet

    logger.info("downloading the %s signature from %s to %s", spec.name, spec.url, folder)
    with quiet(pooch.get_logger()):
        path = pooch.retrieve(
            spec.url,
            known_hash=f"sha256:{spec.sha256}",
            fname=spec.filename,
            path=folder,
            progressbar=progress,
        )
    return Path(path)


def _fetch_signature(args: argparse.Namespace) -> int:
    import secact
    from secact.datasets._signatures import SIGNATURES, _sha256, data_dir

    spec = SIGNATURES[args.name]
    if spec.packaged:
        print(
            f"{spec.name} ships with secact ({spec.shape[0]:,} genes x {spec.shape[1]} proteins); nothing to fetch."
        )
        return 0
    folder = data_dir()
    target = folder / spec.filename
    if args.source is not None:
        source = Path(args.source)
        _existing_file(source, "--from file")
        digest = _sha256(source)
        if digest != spec.sha256:
            raise UserError(
                f"{args.source!r} has sha256 {digest[:16]}..., not the pinned {spec.name} signature "
                f"({spec.sha256[:16]}...); use the file at {spec.url}"
            )
        if not (target.exists() and _sha256(target) == spec.sha256):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with _atomic(target) as tmp:
                    shutil.copyfile(source, tmp)
            except OSError as err:
                raise UserError(
                    f"cannot write {os.fspath(target)!r} ({err.strerror or err}); set SECACT_DATA_DIR "
                    "to a writable folder."
                ) from err
    elif target.exists():
        if _sha256(target) != spec.sha256:
            raise UserError(
                f"{os.fspath(target)!r} is not the pinned {spec.name} signature (sha256 differs); "
                f"delete it and run again, or pass --from with the file from {spec.url}"
            )
    else:
        try:
            _download(spec, folder, progress=not args.quiet and sys.stderr.isatty())
        except Exception as err:  # network errors come in many types (requests, OSError, ...)
            cause = err.__cause__ if err.__cause__ is not None else err
            raise UserError(
                f"could not download the {spec.name} signature ({type(cause).__name__}). Download "
                f"{spec.url} where there is network access, then run: secact fetch-signature "
                f"{spec.name} --from {spec.filename} (or place the file in {folder}, or point "
                "SECACT_DATA_DIR at a folder that holds it)."
            ) from err
    frame = secact.datasets.signature(spec.name)  # checks the table and keeps a parsed copy
    print(
        f"{spec.name} signature ({frame.shape[0]:,} genes x {frame.shape[1]:,} proteins, sha256 "
        f"{spec.sha256[:12]}...) is in {folder}"
    )
    return 0


# ----------------------------------------------------------------------------------------------
# parser
# ----------------------------------------------------------------------------------------------
def _verbosity_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("messages")
    group.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors; no progress bars"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more detail (-v: hints; -vv: debug lines, and tracebacks with errors)",
    )


def _inference_options(group, *, default_signature: str) -> None:
    group.add_argument(
        "-s",
        "--signature",
        default=default_signature,
        metavar="NAME|PATH",
        help=(
            "'SecAct' (1,170 proteins; downloaded once, see fetch-signature), 'CytoSig' "
            "(43 cytokines, ships with secact) or a genes x proteins TSV (default: %(default)s)"
        ),
    )
    group.add_argument(
        "--method",
        choices=["permutation", "analytic"],
        default="permutation",
        help=(
            "permutation: SecAct R's test over permuted genes; analytic: the exact permutation "
            "mean and variance, much faster (default: %(default)s)"
        ),
    )
    group.add_argument(
        "-n",
        "--n-permutations",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="permutations of the permutation test (default: %(default)s)",
    )
    group.add_argument(
        "--rng",
        choices=["mt19937", "srand", "numpy"],
        default="mt19937",
        help="permutation generator: mt19937 = SecAct R, srand = legacy C / SecActPy (default: %(default)s)",
    )
    group.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="seed of the generator (default: %(default)s)",
    )
    group.add_argument(
        "--no-grouping",
        action="store_true",
        help="do not merge proteins with near-identical signatures (r > 0.9) before the regression",
    )


def _expression_options(group) -> None:
    group.add_argument("--layer", metavar="NAME", help="take the values from this layer instead of X")
    group.add_argument(
        "--use-raw",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="take the values from adata.raw (default: raw when it exists and no --layer is given)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``secact`` argument parser (one sub-command per task)."""
    from secact import __version__

    parser = _Parser(
        prog="secact",
        formatter_class=_Formatter,
        description=(
            "Secreted-protein signalling activity (SecAct / CytoSig): ridge regression of\n"
            "expression on a signature of secreted proteins with a permutation test, exact to\n"
            "SecAct R 1.1."
        ),
        epilog=(
            "examples:\n"
            "  secact activity atlas.h5ad -o atlas_secact.h5ad --method analytic\n"
            "  secact activity atlas.h5ad -o per_type.h5ad --groupby cell_type\n"
            "  secact infer logfc.tsv --differential -o ly86\n"
            "  secact differential atlas.h5ad --groupby condition --reference control -o de.tsv\n"
            "  secact fetch-signature SecAct\n\n"
            "Run 'secact COMMAND --help' for the options of a command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"secact {__version__}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    # activity -----------------------------------------------------------------------------
    act = sub.add_parser(
        "activity",
        formatter_class=_Formatter,
        help="activity per cell/spot or per group of an .h5ad file",
        description=(
            "Activity of secreted proteins in an AnnData .h5ad file (cells x genes, raw counts by\n"
            "default), read block by block: nothing is loaded whole.\n\n"
            "Per cell/spot (default): results stream to OUT.h5ad, an AnnData of cells x proteins\n"
            "with X = zscore, the other statistics as layers and the cells' obs.\n"
            "Per group (--groupby): counts are summed per group (pseudo-bulk); OUT.h5ad is groups\n"
            "x proteins with obs['n_cells']."
        ),
        epilog=(
            "examples:\n"
            "  secact activity atlas.h5ad -o atlas_secact.h5ad -s CytoSig --method analytic\n"
            "  secact activity atlas.h5ad -o per_type.h5ad --groupby cell_type --reference B_cell\n"
            "  secact activity atlas.h5ad -o atlas_secact.h5ad --resume   # after an interruption\n"
            "  secact activity visium.h5ad -o spots.h5ad --flavor spatial --method analytic\n\n"
            "Read the results in Python: secact.get.activity('atlas_secact.h5ad')."
        ),
    )
    act.add_argument(
        "input",
        metavar="IN.h5ad",
        help="AnnData file, cells x genes (gene symbols as var_names, or --gene-symbols)",
    )
    io_group = act.add_argument_group("output")
    io_group.add_argument("-o", "--output", required=True, metavar="OUT.h5ad", help="result file (required)")
    io_group.add_argument(
        "--stats",
        type=_stats,
        metavar="LIST",
        help="statistics to keep, comma-separated from beta,se,zscore,pvalue (default: all)",
    )
    io_group.add_argument(
        "--dtype",
        choices=["float64", "float32"],
        default="float64",
        help="storage type of the results; float32 halves the file (default: %(default)s)",
    )
    io_group.add_argument("--overwrite", action="store_true", help="replace OUT.h5ad if it exists")
    io_group.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted per-cell run to OUT.h5ad from its last complete block",
    )
    grp = act.add_argument_group("groups and reference")
    grp.add_argument(
        "-g", "--groupby", metavar="COLUMN", help="obs column: one activity profile per group (pseudo-bulk)"
    )
    grp.add_argument(
        "--reference",
        metavar="REF",
        help=(
            "centre on this instead of the mean: with --groupby a group name (left out of the "
            "results), per cell COLUMN=VALUE of obs (e.g. condition=control)"
        ),
    )
    expr = act.add_argument_group("expression")
    _expression_options(expr)
    expr.add_argument(
        "--gene-symbols",
        metavar="COLUMN",
        help="var column with gene symbols, when var_names are Ensembl ids (e.g. feature_name)",
    )
    expr.add_argument(
        "--organism",
        choices=["human", "mouse"],
        default="human",
        help="mouse genes are mapped to human symbols (default: %(default)s)",
    )
    expr.add_argument(
        "--input",
        dest="input_kind",
        choices=["counts", "log", "differential"],
        default="counts",
        help="counts: full SecAct normalisation; log: already log-normalised; differential: used as is (default: %(default)s)",
    )
    expr.add_argument(
        "--flavor",
        choices=["single-cell", "spatial"],
        default="single-cell",
        help=(
            "SecAct R's pipeline: spatial drops genes without counts before mapping symbols "
            "(SecAct.activity.inference.ST) (default: %(default)s)"
        ),
    )
    expr.add_argument(
        "--control",
        metavar="CONTROL.h5ad",
        help="with --flavor spatial: centre on the gene means of this control sample (R's inputProfile_control)",
    )
    expr.add_argument(
        "--scale-factor",
        type=_positive_float,
        metavar="X",
        help="counts per cell/spot after scaling (default 1e5 as SecAct R; CosMx: 1e3)",
    )
    _inference_options(act.add_argument_group("inference"), default_signature="SecAct")
    run = act.add_argument_group("resources")
    run.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="cells per block; memory is bounded by the block (default: secact.settings.batch_size, 2048)",
    )
    run.add_argument("--n-jobs", type=_positive_int, metavar="N", help="threads (default: all cores)")
    _verbosity_options(act)
    act.set_defaults(func=_activity)

    # infer --------------------------------------------------------------------------------
    inf = sub.add_parser(
        "infer",
        formatter_class=_Formatter,
        help="bulk activity from a genes x samples table",
        description=(
            "Activity of secreted proteins from a bulk genes x samples table (TSV, CSV or\n"
            "whitespace separated, optionally .gz): first column gene symbols, one column per\n"
            "sample. Each gene is centred on its mean over the samples (two or more needed)\n"
            "unless --differential says the table is already a difference.\n"
            "Writes PREFIX.beta.tsv, PREFIX.se.tsv, PREFIX.zscore.tsv and PREFIX.pvalue.tsv\n"
            "(proteins x samples, as SecAct R)."
        ),
        epilog="example:\n  secact infer Ly86-Fc_vs_Vehicle_logFC.txt --differential -o ly86",
    )
    inf.add_argument(
        "profile", metavar="PROFILE", help="genes x samples table (.tsv, .csv, .txt; optionally .gz)"
    )
    inf.add_argument(
        "-o",
        "--output",
        default="secact",
        metavar="PREFIX",
        help="prefix of the result tables (default: %(default)s)",
    )
    inf.add_argument(
        "--differential",
        action="store_true",
        help="the table is already a difference (e.g. log fold changes): used as it is",
    )
    _inference_options(inf.add_argument_group("inference"), default_signature="SecAct")
    _verbosity_options(inf)
    inf.set_defaults(func=_infer)

    # differential -------------------------------------------------------------------------
    de = sub.add_parser(
        "differential",
        formatter_class=_Formatter,
        help="Wilcoxon tests of groups against a reference",
        description=(
            "Wilcoxon rank-sum test of each group of an obs column against a reference (the rest\n"
            "of the cells, or one group), gene by gene, out of core. Writes a tidy table with one\n"
            "row per group and gene: group, gene, statistic, zscore, pvalue, fdr, log2fc,\n"
            "pct_group, pct_reference, mean_group, mean_reference."
        ),
        epilog="example:\n  secact differential atlas.h5ad --groupby condition --reference control -o de.tsv",
    )
    de.add_argument("input", metavar="IN.h5ad", help="AnnData file, cells x genes")
    de.add_argument(
        "-g", "--groupby", required=True, metavar="COLUMN", help="obs column with the groups (required)"
    )
    de.add_argument(
        "-o", "--output", required=True, metavar="OUT.tsv", help="result table, .tsv or .csv (optionally .gz)"
    )
    de.add_argument(
        "--reference",
        default="rest",
        metavar="REF",
        help="a group name, or 'rest' for all other cells (default: %(default)s)",
    )
    de.add_argument("--groups", metavar="LIST", help="comma-separated groups to test (default: all)")
    _expression_options(de)
    de.add_argument(
        "--data",
        choices=["auto", "counts", "log1p"],
        default="auto",
        help="scale of the values for fold changes and means; auto: counts when all are integers (default: %(default)s)",
    )
    de.add_argument("--overwrite", action="store_true", help="replace OUT.tsv if it exists")
    _verbosity_options(de)
    de.set_defaults(func=_differential)

    # fetch-signature ------------------------------------------------------------------------
    from secact.datasets._signatures import SIGNATURES

    fetch = sub.add_parser(
        "fetch-signature",
        formatter_class=_Formatter,
        help="put the SecAct signature in the data folder",
        description=(
            "Download the SecAct signature (80 MB, pinned to a commit of the SecAct repository)\n"
            "into the data folder and verify its sha256, or copy a file you downloaded yourself\n"
            "(--from). The folder is $SECACT_DATA_DIR when set, else the user cache\n"
            "(~/.cache/secact). Afterwards secact works offline."
        ),
        epilog=(
            "offline machines:\n"
            f"  download {SIGNATURES['SecAct'].url}\n"
            "  then: secact fetch-signature SecAct --from SecAct.tsv.gz"
        ),
    )
    fetch.add_argument(
        "name",
        nargs="?",
        default="SecAct",
        choices=list(SIGNATURES),
        help="signature to fetch (default: %(default)s)",
    )
    fetch.add_argument(
        "--from",
        dest="source",
        metavar="FILE",
        help="copy this local file instead of downloading (its sha256 is checked)",
    )
    _verbosity_options(fetch)
    fetch.set_defaults(func=_fetch_signature)

    # example --------------------------------------------------------------------------------
    ex = sub.add_parser(
        "example",
        formatter_class=_Formatter,
        help="CytoSig on simulated cells (offline demo)",
        description=(
            "Simulate cells with planted cytokine responses, run CytoSig per group against the\n"
            "control group, print the top activities and where the planted cytokines rank, and\n"
            "write the groups x proteins result. Exit status 1 if a planted cytokine is not first."
        ),
    )
    ex.add_argument(
        "--n-cells", type=_positive_int, default=2000, metavar="N", help="cells (default: %(default)s)"
    )
    ex.add_argument(
        "--n-permutations",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="permutations (default: %(default)s)",
    )
    ex.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="simulation seed (default: %(default)s)",
    )
    ex.add_argument(
        "--top",
        type=_positive_int,
        default=3,
        metavar="N",
        help="activities shown per group (default: %(default)s)",
    )
    ex.add_argument(
        "--out", default="secact_example.h5ad", metavar="OUT.h5ad", help="result file (default: %(default)s)"
    )
    _verbosity_options(ex)
    ex.set_defaults(func=_example)
    return parser


# ----------------------------------------------------------------------------------------------
# errors and warnings
# ----------------------------------------------------------------------------------------------
#: keyword arguments of the Python API named in library messages -> the options of the command
_FLAGS = {
    "use_raw=True": "--use-raw",
    "use_raw=False": "--no-use-raw",
    "overwrite=True": "--overwrite",
    "differential=True": "--differential",
    "resume=True": "--resume",
    "out=": "-o ",
    "layer=": "--layer ",
    "gene_symbols=": "--gene-symbols ",
    "groupby=": "--groupby ",
    "batch_size=": "--batch-size ",
    "n_permutations=": "--n-permutations ",
    "flavor=": "--flavor ",
    "control=": "--control ",
    "scale_factor=": "--scale-factor ",
}
_FLAG_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in _FLAGS) + ")")


def _message(err: BaseException) -> str:
    """One line for an exception, with Python keyword arguments named as command options."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = err.args[0]
    elif isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.strerror}: {os.fspath(err.filename)!r}"
    else:
        text = str(err)
    text = " ".join(text.split()) or type(err).__name__
    if "CLI:" not in text:
        text = _FLAG_RE.sub(lambda m: _FLAGS[m.group(1)], text)
    return text


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    own = f"{os.sep}secact{os.sep}" in os.fspath(filename)
    origin = "" if own else f" ({category.__name__} from {Path(filename).stem})"
    print(f"secact: warning{origin}: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``secact`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return USER_ERROR
    from secact import settings
    from secact._logging import HINT, cli_logging

    verbose = getattr(args, "verbose", 0)
    level = logging.WARNING if args.quiet else (logging.INFO, HINT, logging.DEBUG)[min(verbose, 2)]
    jobs = getattr(args, "n_jobs", None)
    with (
        cli_logging(level),
        warnings.catch_warnings(),
        settings.override(**({"n_jobs": jobs} if jobs else {})),
    ):
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except (UserError, ValueError, TypeError, KeyError, OSError) as err:
            if verbose >= 2:
                import traceback

                traceback.print_exc()
            print(f"secact: error: {_message(err)}", file=sys.stderr)
            return USER_ERROR
        except KeyboardInterrupt:
            print("secact: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
