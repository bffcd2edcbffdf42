"""The ``secact`` command (also ``python -m secact``).

Commands: ``activity`` (AnnData ``.h5ad`` files, per cell or per group, out of core),
``infer`` (bulk genes x samples tables), ``differential`` (Wilcoxon tests of groups against a
reference), ``coxph`` (survival regression of a cohort on activity), ``fetch-signature`` (the SecAct signature into the cache) and ``example`` (an
offline demonstration).

The command only parses: reading and checking files, the download and the statistics are the
library's (:mod:`secact.io`, :mod:`secact.datasets`). Mistakes a user can fix (a missing or
wrongly formatted file, a missing column, a bad parameter) end the command with exit status 2
and one line ``secact: error: ...`` on stderr; library errors that name a parameter
(:class:`secact._errors.ParamError`) name the command's option instead. ``-vv`` adds the
traceback. Anything else is a bug and shows its traceback. Results go to files, a one-line
summary to stdout; log lines (timings, files written) and progress bars go to stderr.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import logging
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

#: exit status of a mistake the user can fix (argparse uses 2 for its usage errors too)
USER_ERROR = 2

#: library parameters whose option has another name (``dest``)
_DESTS = {"out": "output", "input": "input_kind"}


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
def _number(cast, ok, expected: str):
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0 (e.g. 1e5)")


def _stats(text: str) -> list[str]:
    from secact._results import STATS

    wanted = [s.strip() for s in text.split(",") if s.strip()]
    if not wanted or set(wanted) - set(STATS):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(STATS)}, got {text!r}"
        )
    return wanted


def _check_suffix(path: str | os.PathLike, *kinds: str) -> None:
    """The output's format suffix (before .gz/.bz2/.xz) is one of ``kinds``."""
    from secact.io._files import suffixes

    if suffixes(path)[0] not in kinds:
        allowed = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
        msg = f"--output {os.fspath(path)!r}: the output must be a {allowed} file."
        raise ValueError(msg)


def _reference(args: argparse.Namespace):
    """``--reference``: a group name with ``--groupby``, else ``COLUMN=VALUE`` of obs."""
    if args.reference is None or args.groupby is not None:
        return args.reference
    column, eq, value = args.reference.partition("=")
    if not (eq and column and value):
        msg = (
            f"--reference {args.reference!r}: per cell the reference is COLUMN=VALUE of obs "
            "(e.g. condition=control); with --groupby it is a group name."
        )
        raise ValueError(msg)
    return column, value


# ----------------------------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------------------------
def _example(args: argparse.Namespace) -> int:
    import numpy as np

    import secact
    from secact.io._atomic import atomic_path

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
    print(f"\nCytoSig activity per group vs control (z-scores, {args.n_permutations} permutations):")
    ranks = []
    for group, row in result.to_df().iterrows():
        if group == "control":
            continue
        top = row.sort_values(ascending=False)
        target = planted.get(group)
        rank = int(np.flatnonzero(top.index == target)[0]) + 1 if target in top.index else None
        ranks.append(rank)
        print(f"  {group:<18} top: " + ", ".join(f"{p} {v:+.1f}" for p, v in top.head(args.top).items()))
        if target is not None:
            print(f"  {'':<18} planted {target}: rank {rank} of {len(top)} (z = {row[target]:+.1f})")
    result.uns["planted"] = dict(planted)
    with atomic_path(args.out) as tmp:
        result.write_h5ad(tmp)
    hits = sum(r == 1 for r in ranks if r is not None)
    print(
        f"\nplanted cytokine ranked first in {hits} of {len(ranks)} groups; wrote {args.out} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return 0 if hits == len(ranks) else 1


def _inference(args: argparse.Namespace) -> dict:
    """Keyword arguments of the inference options (shared by ``activity`` and ``infer``)."""
    return {
        "method": args.method,
        "n_permutations": args.n_permutations,
        "rng": args.rng,
        "seed": args.seed,
        "group_signatures": not args.no_grouping,
        "backend": args.backend,
    }


def _infer(args: argparse.Namespace) -> int:
    import secact
    from secact._results import STATS
    from secact.io import check_output
    from secact.io._atomic import atomic_path
    from secact.io._tables import read_profile

    t0 = time.perf_counter()
    outs = {key: f"{args.output}.{key}.tsv" for key in STATS}
    for out in outs.values():  # before reading anything; the tables are replaced
        check_output(out, reads=[args.profile], overwrite=True)
    profile = read_profile(args.profile)
    res = secact.infer(profile, args.signature, differential=args.differential, **_inference(args))
    with contextlib.ExitStack() as written:  # all four tables appear, or none
        for key, out in outs.items():
            getattr(res, key).to_csv(written.enter_context(atomic_path(out)), sep="\t")
    print(
        f"wrote {args.output}.{{{','.join(STATS)}}}.tsv ({res.beta.shape[0]:,} proteins x "
        f"{res.beta.shape[1]:,} sample(s)) in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _activity(args: argparse.Namespace) -> int:
    import secact
    from secact._results import STATS
    from secact.io._files import check_h5ad, h5ad_shape

    t0 = time.perf_counter()
    _check_suffix(args.output, ".h5ad")
    src = check_h5ad(args.input)
    control = None if args.control is None else check_h5ad(args.control, "control")
    secact.tl.activity(
        src,
        args.signature,
        out=args.output,
        overwrite=args.overwrite,
        resume=args.resume,
        groupby=args.groupby,
        reference=_reference(args),
        layer=args.layer,
        use_raw=args.use_raw,
        gene_symbols=args.gene_symbols,
        organism=args.organism,
        input=args.input_kind,
        flavor=args.flavor,
        control=control,
        scale_factor=args.scale_factor,
        stats=args.stats,
        dtype=args.dtype,
        batch_size=args.batch_size,
        progress=False if args.quiet else None,
        **_inference(args),
    )
    n_rows, n_cols = h5ad_shape(args.output)
    what = f"{n_rows:,} cells" if args.groupby is None else f"{n_rows:,} groups of {args.groupby!r}"
    stats = ", ".join(args.stats or STATS)
    print(
        f"done in {time.perf_counter() - t0:.1f} s: {args.output} holds {what} x {n_cols:,} proteins ({stats})"
    )
    return 0


def _differential(args: argparse.Namespace) -> int:
    import secact
    from secact.io import check_output
    from secact.io._files import check_h5ad
    from secact.io._tables import write_table

    t0 = time.perf_counter()
    _check_suffix(args.output, ".tsv", ".csv", ".txt")
    src = check_h5ad(args.input)
    check_output(args.output, reads=[src], overwrite=args.overwrite)
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
    write_table(table, args.output, index=False)
    n_groups = table["group"].nunique()
    print(
        f"wrote {args.output}: {len(table):,} rows ({n_groups} group(s) vs {args.reference} x "
        f"{len(table) // max(n_groups, 1):,} genes) in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _coxph(args: argparse.Namespace) -> int:
    import secact
    from secact.io import check_output
    from secact.io._tables import read_profile, write_table

    t0 = time.perf_counter()
    _check_suffix(args.output, ".tsv", ".csv", ".txt")
    check_output(args.output, reads=[args.activity, args.clinical], overwrite=args.overwrite)
    activity = read_profile(args.activity)
    clinical = read_profile(args.clinical)
    clinical.index = clinical.index.astype(str)
    # proteins x samples (as 'secact infer' and SecAct R write it) unless the rows are the samples
    by_rows = activity.index.astype(str).isin(clinical.index).sum()
    by_columns = activity.columns.astype(str).isin(clinical.index).sum()
    activity = activity if by_rows > by_columns else activity.T
    covariates = [] if args.no_covariates else args.covariates
    if covariates is not None and not isinstance(covariates, list):
        covariates = [c.strip() for c in covariates.split(",") if c.strip()]
    table = secact.tl.coxph(
        activity, clinical, time=args.time, event=args.event, covariates=covariates, ties=args.ties
    )
    write_table(table, args.output)
    scored = int(table["risk_z"].notna().sum())
    print(
        f"wrote {args.output}: {len(table):,} proteins ({scored:,} with a risk score) from "
        f"{int(table['n'].max()):,} samples in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _tune(args: argparse.Namespace) -> int:
    import secact
    from secact.core import machine, tuning
    from secact.core.params import InferenceParams
    from secact.core.plan import make_plan

    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    with secact.settings.override(**({"cache_sizes": args.caches} if args.caches else {})):
        frame = secact.datasets.signature(args.signature)
        name = args.signature if args.signature in ("SecAct", "CytoSig") else None
        model = make_plan(frame, list(frame.index), InferenceParams(), signature_name=name).model
        print(f"caches: {machine.cache_sizes().describe()}")
        print(f"signature: {model.n_genes:,} genes x {model.n_proteins:,} columns")
        for dtype in dtypes:
            with secact.settings.override(tune="rerun" if args.rerun else True):
                choice = tuning.choose(dtype, model.n_genes, model.n_proteins)
            print("\n".join(tuning.describe(choice, dtype, model.n_genes)))
    return 0


def _fetch_signature(args: argparse.Namespace) -> int:
    import secact
    from secact.datasets._signatures import SIGNATURES, install

    spec = SIGNATURES[args.name]
    if spec.packaged:
        print(
            f"{spec.name} ships with secact ({spec.shape[0]:,} genes x {spec.shape[1]} proteins); nothing to fetch."
        )
        return 0
    path = install(spec.name, args.source, progress=not args.quiet and sys.stderr.isatty())
    frame = secact.datasets.signature(spec.name)  # checks the table and keeps a parsed copy
    print(
        f"{spec.name} signature ({frame.shape[0]:,} genes x {frame.shape[1]:,} proteins, sha256 "
        f"{spec.sha256[:12]}...) is in {path.parent}"
    )
    return 0


# ----------------------------------------------------------------------------------------------
# parser
# ----------------------------------------------------------------------------------------------
# fmt: off
def _command(sub, name: str, func, **kwargs) -> argparse.ArgumentParser:
    cmd = sub.add_parser(name, formatter_class=_Formatter, **kwargs)
    cmd.set_defaults(func=func, command_parser=cmd)
    return cmd


def _verbosity_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("messages")
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors; no progress bars")
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="more detail (-v: hints; -vv: debug lines, and tracebacks with errors)")


def _inference_options(group) -> None:
    group.add_argument("-s", "--signature", default="SecAct", metavar="NAME|PATH", help=(
        "'SecAct' (1,170 proteins; downloaded once, see fetch-signature), 'CytoSig' "
        "(43 cytokines, ships with secact) or a genes x proteins TSV (default: %(default)s)"))
    group.add_argument("--method", choices=["permutation", "analytic"], default="permutation", help=(
        "permutation: SecAct R's test over permuted genes; analytic: the exact permutation "
        "mean and variance, much faster (default: %(default)s)"))
    group.add_argument("-n", "--n-permutations", type=_positive_int, default=1000, metavar="N",
                       help="permutations of the permutation test (default: %(default)s)")
    group.add_argument("--rng", choices=["mt19937", "srand", "numpy"], default="mt19937", help=(
        "permutation generator: mt19937 = SecAct R, srand = legacy C / SecActPy (default: %(default)s)"))
    group.add_argument("--seed", type=_non_negative_int, default=0, metavar="N",
                       help="seed of the generator (default: %(default)s)")
    group.add_argument("--no-grouping", action="store_true", help=(
        "do not merge proteins with near-identical signatures (r > 0.9) before the regression"))
    _backend_option(group)


def _backend_option(group) -> None:
    group.add_argument("--backend", choices=["auto", "cpu", "gpu"], default="auto", help=(
        "where inference runs: cpu, or gpu (CUDA; needs pip install 'secact[gpu]'); auto picks the "
        "GPU only for data already on it, so the CPU here (default: %(default)s)"))


def _expression_options(group) -> None:
    group.add_argument("--layer", metavar="NAME", help="take the values from this layer instead of X")
    group.add_argument("--use-raw", action=argparse.BooleanOptionalAction, default=None, help=(
        "take the values from adata.raw (default: raw when it exists and no --layer is given)"))


def _activity_parser(sub) -> None:
    act = _command(sub, "activity", _activity, help="activity per cell/spot or per group of an .h5ad file",
        description=(
            "Activity of secreted proteins in an AnnData .h5ad file or .zarr store (cells x genes,\n"
            "raw counts by default), read block by block: nothing is loaded whole.\n\n"
            "Per cell/spot (default): results stream to OUT.h5ad, an AnnData of cells x proteins\n"
            "with X = zscore, the other statistics as layers and the cells' obs.\n"
            "Per group (--groupby): counts are summed per group (pseudo-bulk); OUT.h5ad is groups\n"
            "x proteins with obs['n_cells']."),
        epilog=(
            "examples:\n"
            "  secact activity atlas.h5ad -o atlas_secact.h5ad -s CytoSig --method analytic\n"
            "  secact activity atlas.h5ad -o per_type.h5ad --groupby cell_type --reference B_cell\n"
            "  secact activity atlas.h5ad -o atlas_secact.h5ad --resume   # after an interruption\n"
            "  secact activity visium.h5ad -o spots.h5ad --flavor spatial --method analytic\n\n"
            "Read the results in Python: secact.get.activity('atlas_secact.h5ad')."))
    act.add_argument("input", metavar="IN.h5ad",
                     help="AnnData .h5ad file or .zarr store, cells x genes (gene symbols as var_names, or --gene-symbols)")
    out = act.add_argument_group("output")
    out.add_argument("-o", "--output", required=True, metavar="OUT.h5ad", help="result file (required)")
    out.add_argument("--stats", type=_stats, metavar="LIST",
                     help="statistics to keep, comma-separated from beta,se,zscore,pvalue (default: all)")
    out.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                     help="storage type of the results; float32 halves the file (default: %(default)s)")
    out.add_argument("--overwrite", action="store_true", help="replace OUT.h5ad if it exists")
    out.add_argument("--resume", action="store_true",
                     help="continue an interrupted per-cell run to OUT.h5ad from its last complete block")
    grp = act.add_argument_group("groups and reference")
    grp.add_argument("-g", "--groupby", metavar="COLUMN",
                     help="obs column: one activity profile per group (pseudo-bulk)")
    grp.add_argument("--reference", metavar="REF", help=(
        "centre on this instead of the mean: with --groupby a group name (left out of the "
        "results), per cell COLUMN=VALUE of obs (e.g. condition=control)"))
    expr = act.add_argument_group("expression")
    _expression_options(expr)
    expr.add_argument("--gene-symbols", metavar="COLUMN",
                      help="var column with gene symbols, when var_names are Ensembl ids (e.g. feature_name)")
    expr.add_argument("--organism", choices=["human", "mouse"], default="human",
                      help="mouse genes are mapped to human symbols (default: %(default)s)")
    expr.add_argument("--input", dest="input_kind", choices=["counts", "log", "differential"], default="counts",
                      help="counts: full SecAct normalisation; log: already log-normalised; differential: "
                      "used as is (default: %(default)s)")
    expr.add_argument("--flavor", choices=["single-cell", "spatial"], default="single-cell", help=(
        "SecAct R's pipeline: spatial drops genes without counts before mapping symbols "
        "(SecAct.activity.inference.ST) (default: %(default)s)"))
    expr.add_argument("--control", metavar="CONTROL.h5ad", help=(
        "with --flavor spatial: centre on the gene means of this control sample (R's inputProfile_control)"))
    expr.add_argument("--scale-factor", type=_positive_float, metavar="X",
                      help="counts per cell/spot after scaling (default 1e5 as SecAct R; CosMx: 1e3)")
    _inference_options(act.add_argument_group("inference"))
    run = act.add_argument_group("resources")
    run.add_argument("--batch-size", type=_positive_int, metavar="N", help=(
        "cells per block; memory is bounded by the block (default: secact.settings.batch_size, 2048)"))
    run.add_argument("--n-jobs", type=_positive_int, metavar="N", help="threads (default: all cores)")
    _verbosity_options(act)


def _infer_parser(sub) -> None:
    inf = _command(sub, "infer", _infer, help="bulk activity from a genes x samples table",
        description=(
            "Activity of secreted proteins from a bulk genes x samples table (TSV, CSV or\n"
            "whitespace separated, optionally .gz): first column gene symbols, one column per\n"
            "sample. Each gene is centred on its mean over the samples (two or more needed)\n"
            "unless --differential says the table is already a difference.\n"
            "Writes PREFIX.beta.tsv, PREFIX.se.tsv, PREFIX.zscore.tsv and PREFIX.pvalue.tsv\n"
            "(proteins x samples, as SecAct R)."),
        epilog="example:\n  secact infer Ly86-Fc_vs_Vehicle_logFC.txt --differential -o ly86")
    inf.add_argument("profile", metavar="PROFILE", help="genes x samples table (.tsv, .csv, .txt; optionally .gz)")
    inf.add_argument("-o", "--output", default="secact", metavar="PREFIX",
                     help="prefix of the result tables (default: %(default)s)")
    inf.add_argument("--differential", action="store_true",
                     help="the table is already a difference (e.g. log fold changes): used as it is")
    _inference_options(inf.add_argument_group("inference"))
    _verbosity_options(inf)


def _differential_parser(sub) -> None:
    de = _command(sub, "differential", _differential, help="Wilcoxon tests of groups against a reference",
        description=(
            "Wilcoxon rank-sum test of each group of an obs column against a reference (the rest\n"
            "of the cells, or one group), gene by gene, out of core. Writes a tidy table with one\n"
            "row per group and gene: group, gene, statistic, zscore, pvalue, fdr, log2fc,\n"
            "pct_group, pct_reference, mean_group, mean_reference."),
        epilog="example:\n  secact differential atlas.h5ad --groupby condition --reference control -o de.tsv")
    de.add_argument("input", metavar="IN.h5ad", help="AnnData .h5ad file or .zarr store, cells x genes")
    de.add_argument("-g", "--groupby", required=True, metavar="COLUMN", help="obs column with the groups (required)")
    de.add_argument("-o", "--output", required=True, metavar="OUT.tsv",
                    help="result table, .tsv or .csv (optionally .gz)")
    de.add_argument("--reference", default="rest", metavar="REF",
                    help="a group name, or 'rest' for all other cells (default: %(default)s)")
    de.add_argument("--groups", metavar="LIST", help="comma-separated groups to test (default: all)")
    _expression_options(de)
    de.add_argument("--data", choices=["auto", "counts", "log1p"], default="auto", help=(
        "scale of the values for fold changes and means; auto: counts when all are integers (default: %(default)s)"))
    de.add_argument("--overwrite", action="store_true", help="replace OUT.tsv if it exists")
    _verbosity_options(de)


def _coxph_parser(sub) -> None:
    cox = _command(sub, "coxph", _coxph, help="Cox regression of survival on each protein's activity",
        description=(
            "Risk score of each secreted protein in a cohort (SecAct R's SecAct.coxph.regression):\n"
            "for every protein, coxph(Surv(Time, Event) ~ covariates + activity) as R's survival\n"
            "package fits it (Efron ties), and the Wald z of the activity and its p-value.\n"
            "ACTIVITY: proteins x samples (e.g. PREFIX.zscore.tsv of 'secact infer'), or samples x\n"
            "proteins; CLINICAL: samples x variables (time, event 1/0, covariates), first column\n"
            "the sample names. Writes one row per protein: risk_z, pvalue, coef, se, n, n_events,\n"
            "failure (why risk_z is empty)."),
        epilog="example:\n  secact infer cohort.tsv -o cohort && secact coxph cohort.zscore.tsv clinical.tsv -o risk.tsv")
    cox.add_argument("activity", metavar="ACTIVITY", help="activity table (.tsv, .csv, .txt; optionally .gz)")
    cox.add_argument("clinical", metavar="CLINICAL", help="clinical table, one row per sample")
    cox.add_argument("-o", "--output", required=True, metavar="OUT.tsv",
                     help="result table, .tsv or .csv (optionally .gz)")
    cox.add_argument("--time", default="Time", metavar="COLUMN", help="column of the times (default: %(default)s)")
    cox.add_argument("--event", default="Event", metavar="COLUMN",
                     help="column of the events, 1 = event, 0 = censored (default: %(default)s)")
    adjust = cox.add_mutually_exclusive_group()
    adjust.add_argument("--covariates", metavar="LIST",
                        help="comma-separated columns to adjust for (default: every other column, as R)")
    adjust.add_argument("--no-covariates", action="store_true", help="adjust for nothing")
    cox.add_argument("--ties", choices=["efron", "breslow"], default="efron",
                     help="handling of tied times (default: %(default)s, as R)")
    cox.add_argument("--overwrite", action="store_true", help="replace OUT.tsv if it exists")
    _verbosity_options(cox)


def _fetch_parser(sub) -> None:
    from secact.datasets._signatures import SIGNATURES

    fetch = _command(sub, "fetch-signature", _fetch_signature, help="put the SecAct signature in the data folder",
        description=(
            "Download the SecAct signature (80 MB, pinned to a commit of the SecAct repository)\n"
            "into the data folder and verify its sha256, or copy a file you downloaded yourself\n"
            "(--from). The folder is $SECACT_DATA_DIR when set, else the user cache\n"
            "(~/.cache/secact). Afterwards secact works offline."),
        epilog=(
            "offline machines:\n"
            f"  download {SIGNATURES['SecAct'].url}\n"
            "  then: secact fetch-signature SecAct --from SecAct.tsv.gz"))
    fetch.add_argument("name", nargs="?", default="SecAct", choices=list(SIGNATURES),
                       help="signature to fetch (default: %(default)s)")
    fetch.add_argument("--from", dest="source", metavar="FILE",
                       help="copy this local file instead of downloading (its sha256 is checked)")
    _verbosity_options(fetch)


def _tune_parser(sub) -> None:
    tune = _command(sub, "tune", _tune, help="choose the sparse kernel for this machine (timed once, kept)",
        description=(
            "Show which sparse permutation kernel runs on this machine and where the dense path\n"
            "takes over, timing the candidates if that was not done yet (a few seconds; the\n"
            "choice is kept in the data folder and used by every later run). The candidates\n"
            "follow the cache sizes; every kernel gives the same numbers."),
        epilog=(
            "examples:\n"
            "  secact tune                      what runs here (times it the first time)\n"
            "  secact tune --rerun              time again, e.g. after moving the data folder\n"
            "  secact tune --caches 32K/512K    as if L1d were 32 KiB and L2 512 KiB"))
    tune.add_argument("-s", "--signature", default="SecAct", metavar="NAME|PATH",
                      help="signature whose shape is timed (default: %(default)s)")
    tune.add_argument("--dtype", choices=["float64", "float32", "both"], default="both",
                      help="precision of the permuted products (default: %(default)s)")
    tune.add_argument("--rerun", action="store_true", help="time again and replace what was kept")
    tune.add_argument("--caches", metavar="L1D/L2", help="force the cache sizes, e.g. 32K/512K")
    _verbosity_options(tune)


def _example_parser(sub) -> None:
    ex = _command(sub, "example", _example, help="CytoSig on simulated cells (offline demo)",
        description=(
            "Simulate cells with planted cytokine responses, run CytoSig per group against the\n"
            "control group, print the top activities and where the planted cytokines rank, and\n"
            "write the groups x proteins result. Exit status 1 if a planted cytokine is not first."))
    ex.add_argument("--n-cells", type=_positive_int, default=2000, metavar="N", help="cells (default: %(default)s)")
    ex.add_argument("--n-permutations", type=_positive_int, default=1000, metavar="N",
                    help="permutations (default: %(default)s)")
    ex.add_argument("--seed", type=_non_negative_int, default=0, metavar="N",
                    help="simulation seed (default: %(default)s)")
    ex.add_argument("--top", type=_positive_int, default=3, metavar="N",
                    help="activities shown per group (default: %(default)s)")
    ex.add_argument("--out", default="secact_example.h5ad", metavar="OUT.h5ad",
                    help="result file (default: %(default)s)")
    _backend_option(ex)
    _verbosity_options(ex)
# fmt: on


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
            "  secact coxph cohort.zscore.tsv clinical.tsv -o risk.tsv\n"
            "  secact fetch-signature SecAct\n"
            "  secact tune\n\n"
            "Run 'secact COMMAND --help' for the options of a command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"secact {__version__}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    for add in (
        _activity_parser,
        _infer_parser,
        _differential_parser,
        _coxph_parser,
        _fetch_parser,
        _tune_parser,
        _example_parser,
    ):
        add(sub)
    return parser


# ----------------------------------------------------------------------------------------------
# errors and warnings
# ----------------------------------------------------------------------------------------------
def _spelling(command: argparse.ArgumentParser):
    """How ``command`` writes a library parameter with a value: its option (``--overwrite``,
    ``--no-use-raw``, ``--layer NAME``, ``--flavor spatial``), or ``name=value`` without one."""
    actions = {a.dest: a for a in command._actions if a.option_strings}

    def spell(name: str, text: str) -> str:
        action = actions.get(_DESTS.get(name, name))
        if action is None:
            return f"{name}={text}"
        flag = next(o for o in action.option_strings if o.startswith("--"))
        if action.nargs == 0:  # a switch
            if text == "True":
                return flag
            negative = [o for o in action.option_strings if o.startswith("--no-")]
            return negative[0] if text == "False" and negative else f"{name}={text}"
        if text == "...":
            return f"{flag} {action.metavar or '{' + ','.join(action.choices or ()) + '}'}"
        if action.choices:
            with contextlib.suppress(ValueError, SyntaxError):
                text = str(ast.literal_eval(text))
        return f"{flag} {text}"

    return spell


def _message(err: BaseException, command: argparse.ArgumentParser) -> str:
    """One line for an exception; parameters the library names are written as options."""
    from secact._errors import render

    if getattr(err, "template", None) is not None:
        text = render(err.template, err.values, _spelling(command))
    elif isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        text = err.args[0]
    elif isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.strerror}: {os.fspath(err.filename)!r}"
    else:
        text = str(err)
    return " ".join(text.split()) or type(err).__name__


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
        except (ValueError, TypeError, KeyError, OSError) as err:
            if verbose >= 2:
                import traceback

                traceback.print_exc()
            print(f"secact: error: {_message(err, args.command_parser)}", file=sys.stderr)
            return USER_ERROR
        except KeyboardInterrupt:
            print("secact: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
