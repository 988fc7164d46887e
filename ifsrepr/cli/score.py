"""``ifsrepr score``: rank a survey's galaxies by how anomalous they are."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..scoring import COMPONENTS, DEFAULT_COMPONENTS
    from ..scoring._cli import add_model_arguments

    parser = subparsers.add_parser(
        "score",
        help="anomaly scores of a survey (ECSV table, most anomalous first)",
        description=(
            "Score every galaxy of a survey dataset (or of an encoding from `ifsrepr encode`) "
            "against a reference population (by default the survey itself): reconstruction "
            "error, per-line excess, peak error, k-NN distance, LOF and Isolation Forest in "
            "latent space; the score is the mean percentile rank of --components. Higher = "
            "more anomalous. Writes an ECSV table with the explanation (top line, region) of "
            "each rank; galaxies that failed extraction are listed as not scored."
        ),
    )
    parser.add_argument(
        "input", help="survey dataset (ifsrepr extract) or encoding (ifsrepr encode)"
    )
    add_model_arguments(parser, required=False)
    parser.add_argument("-o", "--output", required=True, help="scores table to write (.ecsv)")
    parser.add_argument(
        "--reference",
        help="reference population: a dataset or encoding (default: the input itself)",
    )
    parser.add_argument("--save-encoding", metavar="PATH", help="also write the input's encoding")
    parser.add_argument("--n-neighbors", type=int, default=10, help="neighbours for k-NN and LOF")
    parser.add_argument(
        "--components",
        nargs="+",
        choices=COMPONENTS,
        default=list(DEFAULT_COMPONENTS),
        help=f"measures averaged into the score ({' '.join(DEFAULT_COMPONENTS)})",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="galaxies per batch (32)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser


def _encoding(path: str, encoder, args: argparse.Namespace, what: str):
    from ..exceptions import IFSReprError
    from ..scoring import Encoding, encode_dataset, is_encoding_file

    if is_encoding_file(path):
        encoding = Encoding.load(path, spaxel_errors=False)
        if encoder is not None:
            from ..scoring import model_identity

            name, sha256 = model_identity(encoder)
            encoding.check_model(name, sha256, what="--model")
        return encoding
    if encoder is None:
        raise IFSReprError(f"{what} {path} is a survey dataset: --model is needed to encode it")
    return encode_dataset(encoder, path, batch_size=args.batch_size, progress=not args.quiet)


def run(args: argparse.Namespace) -> int:
    from .._atomic import atomic_path
    from ..scoring import AnomalyScorer
    from ..scoring._cli import load_model, warnings_to_stderr

    with warnings_to_stderr():
        encoder = load_model(args.model, args.device) if args.model else None
        encoding = _encoding(args.input, encoder, args, "the input")
        if args.save_encoding:
            encoding.save(args.save_encoding)
        reference = encoding
        if args.reference:
            reference = _encoding(args.reference, encoder, args, "the reference")
        scorer = AnomalyScorer(
            n_neighbors=args.n_neighbors, components=args.components, progress=not args.quiet
        ).fit(reference)
        table = scorer.score(None if reference is encoding else encoding)
        with atomic_path(args.output) as temporary:
            table.write(temporary, format="ascii.ecsv", overwrite=True)
    if not args.quiet:
        scored = table[table["status"] == "scored"]
        print(
            f"scored {len(scored)} galaxies ({len(table) - len(scored)} not scored) against "
            f"{len(reference)} reference galaxies; most anomalous:",
            file=sys.stderr,
        )
        for row in scored[:5]:
            print(
                f"  #{row['rank']} {row['uid']}: score {row['score']:.3f}, top line "
                f"{row['top_line'] or '-'}, {row['region']}",
                file=sys.stderr,
            )
    print(f"scores written to {args.output}")
    return 0
