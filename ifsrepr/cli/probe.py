"""``ifsrepr probe``: linear probes from a survey's latents to catalogue properties."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..scoring._cli import add_model_arguments

    parser = subparsers.add_parser(
        "probe",
        help="how well the latents predict known properties (linear probes vs baselines)",
        description=(
            "Fit cross-validated linear probes from every galaxy's latent vector to catalogue "
            "properties (ridge regression and R2 for numbers, logistic regression and balanced "
            "accuracy for classes), with the same probes on two baselines in the same folds: "
            "PCA of the normalised line stacks (as many components as the latent) and "
            "hand-made line features (integrated fluxes and diagnostic ratios). The catalogue "
            "is matched to the dataset by plate-IFU. Numeric columns are regressed on; text "
            "columns with at most --max-classes values, and booleans, are classes; use --kind "
            "to decide otherwise."
        ),
    )
    parser.add_argument("dataset", help="survey dataset written by `ifsrepr extract`")
    add_model_arguments(parser, required=False)
    parser.add_argument(
        "--encoding",
        help="use the latents of this encoding (`ifsrepr encode` of the same dataset) "
        "instead of encoding again",
    )
    parser.add_argument(
        "--catalog",
        required=True,
        help="table with a plateifu column (truth.ecsv of a mock survey, DRPall...)",
    )
    parser.add_argument(
        "--columns", nargs="+", required=True, metavar="COLUMN", help="the properties to probe"
    )
    parser.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="COLUMN=KIND",
        help="probe COLUMN as 'regression' or 'classification' (repeatable)",
    )
    parser.add_argument("--cv", type=int, default=5, help="cross-validation folds (5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and the PCA (0)")
    parser.add_argument(
        "--n-pca", type=int, default=None, help="PCA baseline components (the latent size)"
    )
    parser.add_argument(
        "--min-match",
        type=float,
        default=1.0,
        help="smallest fraction of the galaxies that must be in the catalogue (1.0)",
    )
    parser.add_argument(
        "--max-classes",
        type=int,
        default=10,
        help="most distinct values of a text column read as classes without --kind (10)",
    )
    parser.add_argument("-o", "--output", help="write the table (.ecsv)")
    parser.add_argument("--plot", help="write a bar chart (.png, .pdf...)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _kinds(items: list[str]) -> dict[str, str]:
    from ..exceptions import IFSReprError

    kinds = {}
    for item in items:
        column, sep, kind = item.partition("=")
        if not sep or not column or kind not in ("regression", "classification"):
            raise IFSReprError(
                f"--kind {item!r}: expected COLUMN=regression or COLUMN=classification"
            )
        kinds[column] = kind
    return kinds


def run(args: argparse.Namespace) -> int:
    from ..exceptions import IFSReprError
    from ..probes import probe_dataset
    from ..scoring._cli import load_model, warnings_to_stderr

    if not args.model and not args.encoding:
        raise IFSReprError("give the encoder (--model) or an encoding of the dataset (--encoding)")
    kinds = _kinds(args.kind)
    with warnings_to_stderr():
        encoder = load_model(args.model, args.device) if args.model else None
        encoding = None
        if args.encoding:
            from ..scoring import Encoding

            encoding = Encoding.load(args.encoding, spaxel_errors=False)
        table = probe_dataset(
            args.dataset,
            args.catalog,
            args.columns,
            encoder=encoder,
            encoding=encoding,
            kinds=kinds,
            cv=args.cv,
            random_state=args.seed,
            n_pca=args.n_pca,
            min_match=args.min_match,
            max_classes=args.max_classes,
            progress=not args.quiet,
        )
    shown = [name for name in table.colnames if name != "note"]
    table[shown].pprint(max_lines=-1, max_width=-1)
    for row in table:
        if row["note"]:
            print(f"{row['property']}: {row['note']}")
    if args.output:
        from .._atomic import atomic_path

        with atomic_path(args.output) as temporary:
            table.write(temporary, format="ascii.ecsv", overwrite=True)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from ..probes import plot_probes

        axes = plot_probes(table)
        axes.figure.savefig(args.plot, dpi=120)
    print(
        f"probed {len(table)} properties on {table.meta['n_galaxies']} galaxies "
        f"({table.meta['n_matched']} in the catalogue) with {table.meta['model_name']}",
        file=sys.stderr,
    )
    return 0
