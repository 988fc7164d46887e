"""``ifsrepr mock``: write a mock MaNGA survey in the DR17 file formats."""

from __future__ import annotations

import argparse
from collections import Counter


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Declare ``ifsrepr mock``'s arguments."""
    from ..mock import ANOMALY_CLASSES, PRODUCTS

    parser = subparsers.add_parser(
        "mock",
        help="write a mock MaNGA survey (DR17 LOGCUBE/MAPS files, line stacks, truth table)",
        description=(
            "Draw galaxies from the real MaNGA catalogue, simulate them (stellar continua "
            "from real spectra, star formation, AGN, dust, rotation, PSF, noise) and write "
            "them in the DR17 formats, with a truth table (truth.ecsv) and a DRPall-like "
            "catalogue (drpall-mock.fits). The same seed gives the same bytes."
        ),
    )
    parser.add_argument("outdir", help="directory to write into")
    parser.add_argument("--n-galaxies", "-n", type=int, default=10, help="number of galaxies (10)")
    parser.add_argument("--seed", "-s", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--products",
        nargs="+",
        choices=PRODUCTS,
        default=["cube", "maps"],
        help=(
            "what to write per galaxy (cube maps); 'linestack' needs no cube: "
            "~7x faster and ~150x smaller"
        ),
    )
    parser.add_argument(
        "--anomaly-rate",
        type=float,
        default=0.0,
        help="fraction of galaxies given a labelled anomaly (0)",
    )
    parser.add_argument(
        "--anomaly-classes",
        nargs="+",
        choices=ANOMALY_CLASSES,
        default=list(ANOMALY_CLASSES),
        help="anomaly classes to use (all)",
    )
    parser.add_argument(
        "--fibres",
        nargs="+",
        type=int,
        choices=[19, 37, 61, 91, 127],
        help="only bundles of these sizes (e.g. 19 for small 34x34 cubes)",
    )
    parser.add_argument("--jobs", "-j", type=int, default=1, help="worker processes (1)")
    parser.add_argument(
        "--compresslevel", type=int, default=1, choices=[0, 1, 2, 3], help="ISA-L gzip level (1)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the survey and print a summary."""
    from ..mock import make_survey

    truth = make_survey(
        args.outdir,
        args.n_galaxies,
        args.seed,
        products=args.products,
        anomaly_rate=args.anomaly_rate,
        anomaly_classes=args.anomaly_classes,
        fibres=args.fibres,
        n_jobs=args.jobs,
        overwrite=args.overwrite,
        compresslevel=args.compresslevel,
        progress=not args.quiet,
    )
    if not args.quiet:
        classes = Counter(str(c) for c in truth["anomaly"])
        listing = ", ".join(f"{name}: {count}" for name, count in sorted(classes.items()))
        print(f"wrote {len(truth)} galaxies ({', '.join(args.products)}) to {args.outdir}")
        print(f"anomalies: {listing}")
        print(f"truth table: {args.outdir}/truth.ecsv; catalogue: {args.outdir}/drpall-mock.fits")
    return 0
