"""``ifsrepr extract``: survey files in, one resumable HDF5 dataset out."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..exceptions import IFSReprError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare the ``extract`` subcommand."""
    parser = subparsers.add_parser(
        "extract",
        help="extract emission-line maps from many files into one survey dataset",
        description=(
            "Read every input with ifsrepr.read; extract emission lines from cubes "
            "(redshift from the catalogue, by plate-IFU) and pass line maps (DAP MAPS) "
            "straight on; resample each galaxy onto the model grid and store it in a "
            "chunked HDF5 dataset, with a metadata table, a failures table and the "
            "normalisation fitted on the whole dataset. Rerunning the same command "
            "resumes: finished galaxies are skipped. Exit code 1 if any input failed."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="files, directories, glob patterns, or tables of paths (.ecsv/.csv/.txt/FITS)",
    )
    parser.add_argument("-o", "--output", required=True, help="dataset file, e.g. survey.h5")
    parser.add_argument(
        "--catalog", help="DRPall-like table with plateifu, nsa_z and nsa_elpetro_th50_r"
    )
    parser.add_argument(
        "--lines",
        default="manga19",
        help="line set (manga19, manga35) or comma-separated line names (default: manga19)",
    )
    parser.add_argument("--method", default="window", help="line extractor for cubes")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extractor option (VALUE parsed as JSON when it can be); repeatable",
    )
    grid = parser.add_argument_group("model grid and normalisation")
    grid.add_argument("--grid", choices=("reff", "native"), default="reff")
    grid.add_argument("--size", type=int, default=64, help="pixels per side (default 64)")
    grid.add_argument(
        "--n-reff", type=float, default=2.0, help="half-width in effective radii (default 2)"
    )
    grid.add_argument("--normalisation", choices=("asinh", "none"), default="asinh")
    run = parser.add_argument_group("execution")
    run.add_argument("--jobs", type=int, default=1, help="local worker processes (default 1)")
    run.add_argument(
        "--scheduler", metavar="ADDRESS", help="run on a Dask distributed scheduler instead"
    )
    run.add_argument("--batch-size", type=int, default=8, help="files per part file (default 8)")
    run.add_argument(
        "--skip-failed",
        action="store_true",
        help="do not retry inputs that failed in an earlier run",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--consolidate",
        metavar="FILE",
        help="afterwards, also write a self-contained single-file copy of the dataset",
    )
    return parser


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise IFSReprError(f"--option needs KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _lines(text: str) -> str | list[str]:
    return [name.strip() for name in text.split(",")] if "," in text else text


def run(args: argparse.Namespace) -> int:
    """Run ``ifsrepr extract``; returns 1 if any input failed."""
    from ..dataset import consolidate, extract_survey
    from ..preprocess import Preprocessor

    preprocessor = Preprocessor(
        _lines(args.lines),
        grid=args.grid,
        size=args.size,
        n_reff=args.n_reff,
        normalisation=args.normalisation,
    )
    preprocessor.params_dict()  # validates the parameters before any work

    def echo(message: str) -> None:
        print(message, file=sys.stderr)

    summary = extract_survey(
        args.inputs,
        args.output,
        catalog=args.catalog,
        method=args.method,
        options=_options(args.option),
        preprocessor=preprocessor,
        jobs=args.jobs,
        scheduler=args.scheduler,
        batch_size=args.batch_size,
        retry_failed=not args.skip_failed,
        progress=not args.no_progress,
        echo=echo,
    )
    if args.consolidate:
        path = consolidate(summary.path, args.consolidate)
        echo(f"self-contained copy: {path}")
    if not summary.ok:
        # Each failure was printed as it happened; end with where to find them all.
        echo(
            f"{len(summary.failures)} input(s) failed; the dataset lists them: "
            f"ifsrepr.dataset.load_failures({str(summary.path)!r})"
        )
        return 1
    return 0
